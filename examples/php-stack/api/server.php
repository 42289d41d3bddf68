<?php
// The seed's `./api-server --port`: PHP's built-in server runs this as its
// router (`php -S 127.0.0.1:$PHPEEK_PM_INSTANCE_PORT api/server.php`), one
// per instance, behind nginx's `upstream api_backend`.
declare(strict_types=1);

header('Content-Type: application/json');
echo json_encode([
    'instance' => getenv('PHPEEK_PM_INSTANCE_ID') ?: null,
    'pid' => getmypid(),
    'path' => parse_url($_SERVER['REQUEST_URI'] ?? '/', PHP_URL_PATH),
]), "\n";
