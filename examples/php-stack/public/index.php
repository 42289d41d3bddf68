<?php
// The page php-fpm renders: it reads the schema the migration created, so
// a 200 from here proves the boot order (migrate -> php-fpm -> nginx).
declare(strict_types=1);

$path = getenv('APP_DB') ?: __DIR__ . '/../var/app.sqlite';
try {
    $db = new SQLite3($path, SQLITE3_OPEN_READONLY);
    $db->busyTimeout(5000);
    $migration = $db->querySingle('SELECT name FROM migrations ORDER BY ran_at LIMIT 1');
} catch (Throwable $e) {
    http_response_code(500);
    echo "no schema: {$e->getMessage()}\n";
    return;
}
if (!is_string($migration)) {
    http_response_code(500);
    echo "no migration recorded\n";
    return;
}
header('Content-Type: text/plain');
printf("rendered-by=php-fpm sapi=%s pid=%d migration=%s\n", PHP_SAPI, getmypid(), $migration);
