<?php
// A queue worker shaped like `php artisan queue:work --json`: takes one job
// at a time from a Redis list with BLPOP (phpredis), prints Laravel's JSON
// status lines ("starting", then "success"), and appends the job id to
// JOBS_LOG (one O_APPEND write per job, so concurrent workers never
// interleave). On SIGTERM it finishes the job in hand, then exits 0, as
// Laravel's worker does; SIGUSR1/SIGUSR2 (which phpeek-pm forwards to every
// instance) are ignored.
declare(strict_types=1);

pcntl_async_signals(true);
$stop = false;
pcntl_signal(SIGTERM, function () use (&$stop) { $stop = true; });
pcntl_signal(SIGINT, function () use (&$stop) { $stop = true; });
pcntl_signal(SIGUSR1, SIG_IGN);
pcntl_signal(SIGUSR2, SIG_IGN);

$queue = getenv('QUEUE_KEY') ?: 'queues:default';
$log = getenv('JOBS_LOG') ?: __DIR__ . '/../var/jobs.log';
$jobMs = (int)(getenv('JOB_MS') ?: 20);
$instance = getenv('PHPEEK_PM_INSTANCE_ID') ?: 'worker';

function status(array $fields): void
{
    $line = json_encode($fields + ['level' => 'info', 'connection' => 'redis', 'timestamp' => date(DATE_ATOM)]);
    fwrite(STDOUT, $line . "\n");
}

$redis = new Redis();
$redis->connect(getenv('REDIS_HOST') ?: '127.0.0.1', (int)(getenv('REDIS_PORT') ?: 6379), 2.0);
$redis->setOption(Redis::OPT_READ_TIMEOUT, 5);

while (!$stop) {
    try {
        $got = $redis->blPop([$queue], 1);
    } catch (RedisException $e) {
        fwrite(STDERR, "redis: {$e->getMessage()}\n");
        usleep(200000);
        continue;
    }
    if (!is_array($got) || count($got) !== 2) {
        continue;
    }
    $id = (string)$got[1];
    $started = microtime(true);
    status(['id' => $id, 'job' => 'App\\Jobs\\Work', 'queue' => $queue, 'status' => 'starting']);
    // An id ending in @MS (e.g. "report-7@4000") takes that long.
    $at = strrpos($id, '@');
    usleep(($at === false ? $jobMs : max(0, (int)substr($id, $at + 1))) * 1000);
    file_put_contents($log, "$id $instance\n", FILE_APPEND);
    status(['id' => $id, 'job' => 'App\\Jobs\\Work', 'queue' => $queue, 'status' => 'success',
        'duration' => round(microtime(true) - $started, 3)]);
}
exit(0);
