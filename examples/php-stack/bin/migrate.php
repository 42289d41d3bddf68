<?php
// The "migration": creates the app's SQLite schema, once per boot, before
// php-fpm starts (a one-shot gating php-fpm). Idempotent, like
// `php artisan migrate --force`.
declare(strict_types=1);

$db = new SQLite3(getenv('APP_DB') ?: __DIR__ . '/../var/app.sqlite');
$db->busyTimeout(5000);
$db->exec('CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, ran_at REAL NOT NULL)');
$db->exec('CREATE TABLE IF NOT EXISTS schedule_runs (id INTEGER PRIMARY KEY, instance TEXT, ran_at REAL NOT NULL)');
$stmt = $db->prepare('INSERT OR IGNORE INTO migrations (name, ran_at) VALUES (:n, :t)');
$stmt->bindValue(':n', '2026_01_01_000000_create_schedule_runs_table');
$stmt->bindValue(':t', microtime(true));
$stmt->execute();
echo "Migrated: 2026_01_01_000000_create_schedule_runs_table\n";
