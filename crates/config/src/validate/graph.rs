//! The dependency graph of `depends_on`.
//!
//! Invariant: iterative (no recursion), so a chain of any length cannot
//! overflow the stack; names that are not processes are ignored here (the
//! cross checks report them).

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::Config;

/// Every elementary cycle found by a depth-first search, each listed once
/// as `a, b, …, a`, starting at its smallest name.
pub(crate) fn find_cycles(config: &Config) -> Vec<Vec<String>> {
    let graph: BTreeMap<&str, Vec<&str>> = config
        .processes
        .iter()
        .map(|(n, p)| {
            let deps = p
                .dependency_names()
                .filter(|d| config.processes.contains_key(*d))
                .collect();
            (n.as_str(), deps)
        })
        .collect();
    let mut color: HashMap<&str, u8> = HashMap::new();
    let mut cycles = Vec::new();
    let mut seen: HashSet<Vec<String>> = HashSet::new();
    for &start in graph.keys() {
        if color.get(start).copied().unwrap_or(0) != 0 {
            continue;
        }
        let mut stack: Vec<(&str, usize)> = vec![(start, 0)];
        color.insert(start, 1);
        while let Some(top) = stack.last_mut() {
            let (node, idx) = *top;
            let children = graph.get(node).map(Vec::as_slice).unwrap_or(&[]);
            if let Some(&child) = children.get(idx) {
                top.1 += 1;
                match color.get(child).copied().unwrap_or(0) {
                    0 => {
                        color.insert(child, 1);
                        stack.push((child, 0));
                    }
                    1 => {
                        if let Some(at) = stack.iter().position(|(n, _)| *n == child) {
                            let mut cycle: Vec<String> =
                                stack[at..].iter().map(|(n, _)| n.to_string()).collect();
                            // Rotate so the smallest name comes first.
                            if let Some(min_at) = cycle
                                .iter()
                                .enumerate()
                                .min_by(|a, b| a.1.cmp(b.1))
                                .map(|(i, _)| i)
                            {
                                cycle.rotate_left(min_at);
                            }
                            if seen.insert(cycle.clone()) {
                                let mut shown = cycle.clone();
                                if let Some(f) = cycle.first() {
                                    shown.push(f.clone());
                                }
                                cycles.push(shown);
                            }
                        }
                    }
                    _ => {}
                }
            } else {
                color.insert(node, 2);
                stack.pop();
            }
        }
    }
    cycles
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::process::default_process;
    use crate::Global;

    fn config_with_deps(deps: &[(&str, &[&str])]) -> Config {
        let mut c = Config {
            version: "1.0".into(),
            global: Global::default(),
            processes: BTreeMap::new(),
        };
        for (name, ds) in deps {
            let mut p = default_process();
            p.depends_on = ds
                .iter()
                .map(|s| crate::Dependency::new(*s, crate::DependencyCondition::Healthy))
                .collect();
            c.processes.insert(name.to_string(), p);
        }
        c
    }

    #[test]
    fn cycles() {
        let c = config_with_deps(&[("a", &["b"]), ("b", &["c"]), ("c", &["a"]), ("d", &["a"])]);
        assert_eq!(find_cycles(&c), vec![vec!["a", "b", "c", "a"]]);
        let c = config_with_deps(&[("a", &["a"])]);
        assert_eq!(find_cycles(&c), vec![vec!["a", "a"]]);
        let c = config_with_deps(&[("a", &["b"]), ("b", &[]), ("c", &["a", "b"])]);
        assert!(find_cycles(&c).is_empty());
        let c = config_with_deps(&[("x", &["y"]), ("y", &["x"]), ("p", &["q"]), ("q", &["p"])]);
        assert_eq!(find_cycles(&c).len(), 2);
        let c = config_with_deps(&[("a", &["missing"])]);
        assert!(find_cycles(&c).is_empty());
    }

    #[test]
    fn long_dependency_chain_does_not_overflow() {
        let names: Vec<String> = (0..20_000).map(|i| format!("p{i}")).collect();
        let mut c = config_with_deps(&[]);
        for (i, n) in names.iter().enumerate() {
            let mut p = default_process();
            if let Some(next) = names.get(i + 1) {
                p.depends_on = vec![crate::Dependency::new(
                    next.clone(),
                    crate::DependencyCondition::Healthy,
                )];
            } else {
                p.depends_on = vec![crate::Dependency::new(
                    "p0",
                    crate::DependencyCondition::Healthy,
                )];
            }
            c.processes.insert(n.clone(), p);
        }
        assert_eq!(find_cycles(&c).len(), 1);
    }
}
