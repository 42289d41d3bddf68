<?php
// The per-minute task (as `php artisan schedule:run`): records each run in
// the schema the migration created.
declare(strict_types=1);

$db = new SQLite3(getenv('APP_DB') ?: __DIR__ . '/../var/app.sqlite');
$db->busyTimeout(5000);
$stmt = $db->prepare('INSERT INTO schedule_runs (instance, ran_at) VALUES (:i, :t)');
$stmt->bindValue(':i', getenv('PHPEEK_PM_INSTANCE_ID') ?: 'cli');
$stmt->bindValue(':t', microtime(true));
$stmt->execute();
echo "Running scheduled command: record-run\n";
