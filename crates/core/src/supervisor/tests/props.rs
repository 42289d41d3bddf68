//! The whole machine under random sequences of requests, exits, spawn
//! results and timer firings.

use std::collections::{HashMap, HashSet};

use super::*;
use proptest::prelude::*;

const YAML: &str = "
global:
  restart_backoff_initial: 100ms
  restart_backoff_max: 1s
processes:
  w:
    command: [\"w\"]
    scale: 2
    shutdown:
      timeout: 2s
";

#[derive(Debug, Clone)]
enum Op {
    Scale(u32),
    SpawnAll,
    Obey,
    /// The live instance at this index (mod count) exits.
    Exit(usize, i32),
    Advance(u64),
    Stop(u32),
    Start(u32),
    Restart(Option<u32>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0u32..7).prop_map(Op::Scale),
        Just(Op::SpawnAll),
        Just(Op::Obey),
        (0usize..8, 0i32..3).prop_map(|(i, c)| Op::Exit(i, c)),
        (1u64..2500).prop_map(Op::Advance),
        (1u32..7).prop_map(Op::Stop),
        (1u32..7).prop_map(Op::Start),
        proptest::option::of(1u32..7).prop_map(Op::Restart),
    ]
}

/// Live leaders by instance name; panics on two live pids for one name.
fn check_one_leader_per_name(rig: &Rig) {
    let mut seen = HashSet::new();
    for at in rig.sup.pids.values() {
        assert!(seen.insert(at.clone()), "two live leaders for {at:?}");
    }
    for pid in &rig.fx().alive {
        assert!(
            rig.sup.pids.contains_key(pid) || rig.sup.strays.contains(pid),
            "a live child the supervisor does not know: {pid}"
        );
    }
}

/// Whether instance `n` is in the table with a stop by request in force.
fn stopped_by_request(rig: &Rig, n: u32) -> bool {
    rig.sup
        .processes
        .get("w")
        .and_then(|p| p.instances.get(&n))
        .is_some_and(|i| i.intent == crate::supervisor::model::Intent::Stop)
}

fn run(ops: Vec<Op>) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap();
    rt.block_on(async move {
        let mut rig = Rig::new(YAML);
        // Instances stopped by request, and the spawn count when they were.
        let mut stopped: HashMap<u32, usize> = HashMap::new();
        let spawns_of =
            |rig: &Rig, n: u32| rig.spawns_of("w").iter().filter(|(m, _)| *m == n).count();
        for op in ops {
            match op {
                Op::Scale(n) => drop(rig.scale("w", n)),
                Op::SpawnAll => drop(rig.spawn_all()),
                Op::Obey => rig.obey(),
                Op::Exit(i, code) => {
                    let live = rig.running("w");
                    if !live.is_empty() {
                        let name = live[i % live.len()].clone();
                        rig.exit(&name, code);
                    }
                }
                Op::Advance(ms_) => rig.advance(ms(ms_)).await,
                Op::Stop(n) => {
                    let name = format!("w-{n}");
                    if rig.act(&name, Action::Stop).is_ok() && stopped_by_request(&rig, n) {
                        stopped.insert(n, spawns_of(&rig, n));
                    }
                }
                Op::Start(n) => {
                    if rig.act(&format!("w-{n}"), Action::Start).is_ok() {
                        stopped.remove(&n);
                    }
                }
                Op::Restart(Some(n)) => {
                    if rig.act(&format!("w-{n}"), Action::Restart).is_ok() {
                        stopped.remove(&n);
                    }
                }
                Op::Restart(None) => drop(rig.act("w", Action::Restart)),
            }
            check_one_leader_per_name(&rig);
            // A stopped instance that is scaled away leaves the set: a later
            // instance with its number is a new one.
            stopped.retain(|n, _| stopped_by_request(&rig, *n));
            for (n, count) in &stopped {
                assert_eq!(
                    spawns_of(&rig, *n),
                    *count,
                    "w-{n} was restarted after a stop by request"
                );
            }
        }
        // Quiesce: everything obeys, timers fire, stops are lifted.
        let desired = rig.process("w").desired;
        for _ in 0..6 {
            rig.converge();
            rig.advance(secs(3)).await;
        }
        drop(rig.act("w", Action::Start));
        for _ in 0..6 {
            rig.converge();
            rig.advance(secs(3)).await;
        }
        let want: Vec<String> = (1..=desired).map(|n| format!("w-{n}")).collect();
        assert_eq!(
            rig.running("w"),
            want,
            "the live set converges to 1..=desired"
        );
        assert_eq!(rig.fx().alive.len() as u32, desired, "no leaked child");
        check_one_leader_per_name(&rig);
    });
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]
    #[test]
    fn random_sequences_keep_the_invariants(ops in proptest::collection::vec(op(), 1..60)) {
        run(ops);
    }
}
