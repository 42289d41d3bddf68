<?php
// Pushes jobs onto the queue: `php bin/producer.php N [prefix]` RPUSHes the
// ids prefix-1..prefix-N (in batches) and prints how many it pushed.
declare(strict_types=1);

$n = (int)($argv[1] ?? 100);
$prefix = $argv[2] ?? 'job';
$redis = new Redis();
$redis->connect(getenv('REDIS_HOST') ?: '127.0.0.1', (int)(getenv('REDIS_PORT') ?: 6379), 2.0);
$queue = getenv('QUEUE_KEY') ?: 'queues:default';
for ($i = 1; $i <= $n; $i += 500) {
    $batch = [];
    for ($j = $i; $j < min($n + 1, $i + 500); $j++) {
        $batch[] = "$prefix-$j";
    }
    $redis->rPush($queue, ...$batch);
}
echo "pushed $n\n";
