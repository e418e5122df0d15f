//! Order and cycles over a plain adjacency list (`deps[i]` lists the indices node `i`
//! depends on): the graph algorithms the manifest validator, the graph and the scheduler's
//! DAG share. Every walk is iterative, so a long chain cannot overflow the stack.

use std::collections::BTreeSet;

/// Dependencies before dependents; among nodes ready at the same time the lowest index
/// comes first, so the order is stable. `None` when there is a cycle.
pub fn order(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    let n = deps.len();
    let mut remaining: Vec<usize> = deps.iter().map(Vec::len).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, list) in deps.iter().enumerate() {
        for &d in list {
            dependents[d].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&i| remaining[i] == 0).collect();
    let mut out = Vec::with_capacity(n);
    while let Some(i) = ready.pop_first() {
        out.push(i);
        for &d in &dependents[i] {
            remaining[d] -= 1;
            if remaining[d] == 0 {
                ready.insert(d);
            }
        }
    }
    (out.len() == n).then_some(out)
}

/// The strongly connected components that contain a cycle (two or more nodes, or one node
/// depending on itself), each sorted ascending; Tarjan's algorithm.
pub fn cycles(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    strongly_connected(deps)
        .into_iter()
        .filter(|c| c.len() > 1 || deps[c[0]].contains(&c[0]))
        .map(|mut c| {
            c.sort_unstable();
            c
        })
        .collect()
}

/// One cycle as a closed path of indices (first and last equal), or `None`.
pub fn find_cycle(deps: &[Vec<usize>]) -> Option<Vec<usize>> {
    let component = cycles(deps).into_iter().next()?;
    Some(close_path(deps, &component))
}

/// Follows edges inside `component` from its first member back to it: `a → b → c → a`.
pub fn close_path(deps: &[Vec<usize>], component: &[usize]) -> Vec<usize> {
    let Some(&start) = component.first() else {
        return Vec::new();
    };
    if deps[start].contains(&start) {
        return vec![start, start];
    }
    // Breadth-first from the start along edges inside the component, until an edge leads
    // back to the start: the shortest way round.
    let mut previous: std::collections::HashMap<usize, usize> = Default::default();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(cur) = queue.pop_front() {
        for &next in &deps[cur] {
            if !component.contains(&next) {
                continue;
            }
            if next == start {
                let mut middle = Vec::new();
                let mut at = cur;
                while at != start {
                    middle.push(at);
                    at = previous[&at];
                }
                middle.reverse();
                let mut path = vec![start];
                path.extend(middle);
                path.push(start);
                return path;
            }
            if let std::collections::hash_map::Entry::Vacant(e) = previous.entry(next) {
                e.insert(cur);
                queue.push_back(next);
            }
        }
    }
    vec![start, start]
}

fn strongly_connected(deps: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = deps.len();
    let mut index = vec![usize::MAX; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack = Vec::new();
    let mut out = Vec::new();
    let mut next = 0;
    for root in 0..n {
        if index[root] != usize::MAX {
            continue;
        }
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut child)) = work.last_mut() {
            if *child == 0 && index[v] == usize::MAX {
                index[v] = next;
                low[v] = next;
                next += 1;
                stack.push(v);
                on_stack[v] = true;
            }
            if let Some(&w) = deps[v].get(*child) {
                *child += 1;
                if index[w] == usize::MAX {
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(index[w]);
                }
            } else {
                work.pop();
                if let Some(&(parent, _)) = work.last() {
                    low[parent] = low[parent].min(low[v]);
                }
                if low[v] == index[v] {
                    let mut comp = Vec::new();
                    while let Some(w) = stack.pop() {
                        on_stack[w] = false;
                        comp.push(w);
                        if w == v {
                            break;
                        }
                    }
                    out.push(comp);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_puts_dependencies_first_and_breaks_ties_by_index() {
        // 0 <- 1 <- 3, 0 <- 2 <- 3 (a diamond)
        assert_eq!(
            order(&[vec![], vec![0], vec![0], vec![1, 2]]),
            Some(vec![0, 1, 2, 3])
        );
        assert_eq!(order(&[vec![1], vec![0]]), None);
    }

    #[test]
    fn cycles_name_every_member_and_self_loops() {
        let deps = vec![vec![2], vec![0], vec![1], vec![]];
        assert_eq!(cycles(&deps), vec![vec![0, 1, 2]]);
        assert_eq!(cycles(&[vec![0]]), vec![vec![0]]);
        assert!(cycles(&[vec![], vec![0]]).is_empty());
    }

    #[test]
    fn a_cycle_is_walked_in_edge_order() {
        // 0 → 2 → 1 → 0
        let deps = vec![vec![2], vec![0], vec![1]];
        assert_eq!(find_cycle(&deps), Some(vec![0, 2, 1, 0]));
        assert_eq!(find_cycle(&[vec![0]]), Some(vec![0, 0]));
        assert_eq!(find_cycle(&[vec![], vec![0]]), None);
    }

    #[test]
    fn deep_chains_do_not_overflow() {
        let deps: Vec<Vec<usize>> = (0..100_000)
            .map(|i| if i == 0 { vec![] } else { vec![i - 1] })
            .collect();
        assert!(cycles(&deps).is_empty());
        assert_eq!(order(&deps).map(|o| o.len()), Some(100_000));
    }
}
