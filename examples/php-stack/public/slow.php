<?php
// A slow request (?ms=N, at most 60 s): an in-flight request that a
// graceful php-fpm stop (SIGQUIT) lets finish. With MARK_DIR set it
// writes MARK_DIR/slow-<ms>.started first, so a test knows it is in flight.
declare(strict_types=1);

$ms = max(0, min(60000, (int)($_GET['ms'] ?? 2000)));
$mark = getenv('MARK_DIR');
if (is_string($mark) && $mark !== '') {
    touch("$mark/slow-$ms.started");
}
// A signal to the worker (php-fpm's SIGQUIT) cuts usleep() short, so
// sleep until the time is really up, as work that must finish would.
$start = hrtime(true);
while (($left = $ms - intdiv(hrtime(true) - $start, 1000000)) > 0) {
    usleep($left * 1000);
}
header('Content-Type: text/plain');
printf("slow done after %d ms (took %d ms) pid=%d\n", $ms, intdiv(hrtime(true) - $start, 1000000), getmypid());
