//! Scaling as a plan: given the instance numbers a process has and its
//! desired scale, which numbers to start and which to stop.
//!
//! Invariants the supervisor relies on (property-tested below):
//! - Applying the plan after every change converges to exactly the
//!   instances `1..=desired`, whatever sequence of targets came before.
//! - Running instances within `1..=desired` are never touched.
//! - Scale-down removes the highest numbers first.
//! - A number still held by an instance being removed is not started again
//!   until that instance is gone (its predecessor must be reaped first).

/// What to do to reach the desired scale.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Numbers to create and start, ascending.
    pub start: Vec<u32>,
    /// Numbers to stop and remove, highest first.
    pub remove: Vec<u32>,
}

/// `existing` yields each instance number with whether it is already being
/// removed (a number given twice: the last one counts).
///
/// Runs after every batch of messages, so it must cost little when nothing
/// is to be done: one pass over a sorted vector, nothing allocated for an
/// empty plan (issue 13: a map built per call made scaling to 1000
/// quadratic).
pub fn plan_scale(existing: impl IntoIterator<Item = (u32, bool)>, desired: u32) -> Plan {
    let mut have: Vec<(u32, bool)> = existing.into_iter().collect();
    if !have.is_sorted_by_key(|(n, _)| *n) {
        have.sort_by_key(|(n, _)| *n);
    }
    // Keep the last of equal numbers (sorting is stable).
    have.reverse();
    have.dedup_by_key(|(n, _)| *n);
    have.reverse();
    let mut start = Vec::new();
    let mut held = have.iter().map(|(n, _)| *n).peekable();
    for n in 1..=desired {
        while held.next_if(|h| *h < n).is_some() {}
        if held.next_if_eq(&n).is_none() {
            start.push(n);
        }
    }
    let remove = have
        .iter()
        .rev()
        .take_while(|(n, _)| *n > desired)
        .filter(|(_, removing)| !*removing)
        .map(|(n, _)| *n)
        .collect();
    Plan { start, remove }
}

/// One instance as the idle-first plan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    pub number: u32,
    /// Already being removed.
    pub removing: bool,
    /// Busy by its own output.
    pub busy: bool,
}

/// `scale_down.order: idle_first`: keep `desired` instances, stopping idle
/// ones first (the highest number among equals), and start new ones at the
/// lowest numbers nobody holds.
///
/// Invariants (property-tested): converges to exactly `desired` live
/// instances; never removes a busy instance while an idle one is kept; a
/// number still held (even by an instance being removed) is not started.
pub fn plan_scale_idle_first(existing: impl IntoIterator<Item = Held>, desired: u32) -> Plan {
    let all: Vec<Held> = existing.into_iter().collect();
    let mut live: Vec<Held> = all.iter().copied().filter(|h| !h.removing).collect();
    let want = usize::try_from(desired).unwrap_or(usize::MAX);
    if live.len() > want {
        // Idle before busy, then the highest number first.
        live.sort_by_key(|h| (h.busy, std::cmp::Reverse(h.number)));
        let remove = live[..live.len() - want].iter().map(|h| h.number).collect();
        return Plan {
            start: Vec::new(),
            remove,
        };
    }
    let held: std::collections::BTreeSet<u32> = all.iter().map(|h| h.number).collect();
    let start = (1..)
        .filter(|n| !held.contains(n))
        .take(want - live.len())
        .collect();
    Plan {
        start,
        remove: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    #[test]
    fn up_starts_only_the_missing_numbers() {
        let p = plan_scale([(1, false), (2, false), (3, false)], 5);
        assert_eq!(p.start, vec![4, 5]);
        assert!(p.remove.is_empty());
    }

    #[test]
    fn down_removes_highest_first() {
        let p = plan_scale((1..=5).map(|n| (n, false)), 2);
        assert_eq!(p.remove, vec![5, 4, 3]);
        assert!(p.start.is_empty());
    }

    #[test]
    fn a_number_being_removed_is_not_started_again_yet() {
        let p = plan_scale([(1, false), (2, true)], 2);
        assert!(p.start.is_empty());
        assert!(p.remove.is_empty());
    }

    fn held(number: u32, removing: bool, busy: bool) -> Held {
        Held {
            number,
            removing,
            busy,
        }
    }

    #[test]
    fn idle_first_stops_idle_instances_before_busy_ones() {
        let p = plan_scale_idle_first(
            [
                held(1, false, true),
                held(2, false, false),
                held(3, false, true),
                held(4, false, false),
            ],
            2,
        );
        assert_eq!(p.remove, vec![4, 2]);
        let p = plan_scale_idle_first(
            [
                held(1, false, true),
                held(2, false, true),
                held(3, false, false),
            ],
            1,
        );
        assert_eq!(p.remove, vec![3, 2], "then the highest busy one");
    }

    #[test]
    fn idle_first_scale_up_fills_the_lowest_free_numbers() {
        let p = plan_scale_idle_first(
            [
                held(2, false, true),
                held(5, false, false),
                held(3, true, false),
            ],
            5,
        );
        assert_eq!(
            p.start,
            vec![1, 4, 6],
            "3 is still held by a stopping instance"
        );
    }

    proptest! {
        #[test]
        fn idle_first_converges_and_spares_busy_ones(
            targets in proptest::collection::vec(0u32..20, 1..30),
            busy in proptest::collection::vec(any::<bool>(), 40),
        ) {
            // Model: number -> (removing, busy); removing ones exit at once.
            let mut have: BTreeMap<u32, bool> = BTreeMap::new();
            for t in targets {
                let list: Vec<Held> = have
                    .iter()
                    .map(|(n, b)| held(*n, false, *b))
                    .collect();
                let p = plan_scale_idle_first(list.clone(), t);
                for n in &p.remove {
                    let removed_busy = have[n];
                    if removed_busy {
                        // No idle instance may be kept while a busy one goes.
                        let kept_idle = have
                            .iter()
                            .any(|(m, b)| !*b && !p.remove.contains(m));
                        prop_assert!(!kept_idle);
                    }
                }
                for n in &p.remove {
                    have.remove(n);
                }
                for n in &p.start {
                    prop_assert!(!have.contains_key(n));
                    let b = busy[usize::try_from(*n).unwrap_or(0) % busy.len()];
                    have.insert(*n, b);
                }
                prop_assert_eq!(have.len(), t as usize);
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Scale(u32),
        /// The removing instance at this position (mod count) exits.
        Exit(usize),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u32..60).prop_map(Op::Scale),
            (0usize..100).prop_map(Op::Exit),
        ]
    }

    /// Model: number -> removing?
    fn apply(model: &mut BTreeMap<u32, bool>, desired: u32) {
        let p = plan_scale(model.iter().map(|(n, r)| (*n, *r)), desired);
        for n in p.start {
            model.insert(n, false);
        }
        for n in p.remove {
            model.insert(n, true);
        }
    }

    proptest! {
        #[test]
        fn any_sequence_converges_to_the_last_target(ops in prop::collection::vec(op(), 1..60), initial in 0u32..20) {
            let mut model = BTreeMap::new();
            let mut desired = initial;
            apply(&mut model, desired);
            for op in ops {
                match op {
                    Op::Scale(d) => desired = d,
                    Op::Exit(i) => {
                        let removing: Vec<u32> = model.iter().filter(|(_, r)| **r).map(|(n, _)| *n).collect();
                        if !removing.is_empty() {
                            model.remove(&removing[i % removing.len()]);
                        }
                    }
                }
                apply(&mut model, desired);
                // Never two live instances with one number, never a live
                // instance outside 1..=desired that is not being removed.
                for (n, removing) in &model {
                    prop_assert!(*removing || (1..=desired).contains(n));
                }
            }
            // Let every removal finish, then reconcile once more.
            model.retain(|_, r| !*r);
            apply(&mut model, desired);
            let live: Vec<u32> = model.keys().copied().collect();
            prop_assert_eq!(live, (1..=desired).collect::<Vec<u32>>());
            prop_assert!(model.values().all(|r| !*r));
        }
    }
}
