<?php
// php-fpm's health check: one real FastCGI request for the pool's
// `ping.path` (/ping), straight to php-fpm's listen address, as nginx would
// send it. Exit 0 when php-fpm's answer contains "pong", 1 otherwise.
//   php bin/fpm-ping.php 127.0.0.1:9001
// The same request for any script, with the text to expect:
//   php bin/fpm-ping.php 127.0.0.1:9001 /app/public/slow.php?ms=5000 'slow done'
declare(strict_types=1);

$address = $argv[1] ?? '127.0.0.1:9000';
[$path, $query] = array_pad(explode('?', $argv[2] ?? '/ping', 2), 2, '');
$expect = $argv[3] ?? 'pong';

function record(int $type, string $content): string
{
    // version 1, type, request id 1, content length, no padding
    return pack('CCnnCx', 1, $type, 1, strlen($content), 0) . $content;
}

function pair(string $name, string $value): string
{
    $len = fn(string $s) => strlen($s) < 128 ? chr(strlen($s)) : pack('N', strlen($s) | 0x80000000);
    return $len($name) . $len($value) . $name . $value;
}

$target = str_starts_with($address, '/') ? "unix://$address" : "tcp://$address";
$sock = @stream_socket_client($target, $errno, $errstr, 2.0);
if ($sock === false) {
    fwrite(STDERR, "fpm-ping: connect $address: $errstr\n");
    exit(1);
}
stream_set_timeout($sock, 60);
$params = pair('SCRIPT_NAME', $path) . pair('SCRIPT_FILENAME', $path)
    . pair('REQUEST_URI', $path) . pair('REQUEST_METHOD', 'GET')
    . pair('QUERY_STRING', $query) . pair('SERVER_PROTOCOL', 'HTTP/1.1')
    . pair('GATEWAY_INTERFACE', 'CGI/1.1');
// BEGIN_REQUEST (responder role, close after), PARAMS, empty PARAMS, empty STDIN
fwrite($sock, record(1, pack('nCx5', 1, 0)) . record(4, $params) . record(4, '') . record(5, ''));

$stdout = '';
$ended = false;
while (!$ended && !feof($sock)) {
    $head = fread($sock, 8);
    if ($head === false || strlen($head) < 8) {
        break;
    }
    $h = unpack('Cversion/Ctype/nid/nlength/Cpadding', $head);
    $body = $h['length'] + $h['padding'] > 0 ? stream_get_contents($sock, $h['length'] + $h['padding']) : '';
    if ($h['type'] === 6) {
        $stdout .= substr((string)$body, 0, $h['length']);
    } elseif ($h['type'] === 3) {
        $ended = true;
    }
}
fclose($sock);
if ($ended && str_contains($stdout, $expect)) {
    exit(0);
}
fwrite(STDERR, "fpm-ping: no \"$expect\" from $address: " . json_encode($stdout) . "\n");
exit(1);
