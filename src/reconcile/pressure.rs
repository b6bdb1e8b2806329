//! The memory budget's decisions: whether the tenants' memory (or the host's) asks for
//! instances to be put to sleep, how many bytes, and which: idle on-demand instances, least
//! recently used first. Pure: readings in, a decision out; the actor reads and acts.

use tokio::time::Instant;

use crate::metrics::memory::SleepReason;
use crate::names::InstanceKey;
use crate::runtime::memory::HostMemory;

/// The host's memory is short below this share of it available, whatever the target.
pub(super) const HOST_AVAILABLE_FLOOR_PERCENT: u64 = 5;
/// PSI `some avg10` at or above this (percent of time some task waited for memory) is
/// pressure: one more instance goes to sleep at each look while it lasts.
pub(super) const PRESSURE_AVG10: f64 = 10.0;

/// What the settings ask, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Budget {
    pub(super) target: Option<u64>,
    pub(super) limit: Option<u64>,
    /// The target is a share of the host: the host's own use is held to it too.
    pub(super) host_share: bool,
}

/// Memory to free, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Need {
    pub(super) bytes: u64,
    pub(super) reason: SleepReason,
    /// For the events: "the tenants use 310 MB of memory_target = 300 MB".
    pub(super) message: String,
}

/// Whether memory must be freed: `tenants` is what the tenants use now, `pending` what the
/// instances already on their way to sleep will free, `wanted` the room a waiting wake
/// lacks.
pub(super) fn need(
    budget: Budget,
    tenants: u64,
    host: HostMemory,
    pending: u64,
    wanted: u64,
) -> Option<Need> {
    let excess = |used: u64, bound: u64| used.saturating_sub(pending).checked_sub(bound);
    if wanted > pending {
        return Some(Need {
            bytes: wanted - pending,
            reason: SleepReason::Room,
            message: match pending {
                0 => format!(
                    "a wake needs {} more under memory_limit_total",
                    megabytes(wanted, true)
                ),
                _ => format!(
                    "a wake needs {} more under memory_limit_total, beyond the {} already being freed",
                    megabytes(wanted - pending, true),
                    megabytes(pending, false)
                ),
            },
        });
    }
    if let Some(target) = budget.target
        && let Some(bytes) = excess(tenants, target).filter(|bytes| *bytes > 0)
    {
        return Some(Need {
            bytes,
            reason: SleepReason::Target,
            message: format!(
                "memory over target: the tenants use {} of memory_target = {}",
                megabytes(tenants, true),
                megabytes(target, false)
            ),
        });
    }
    let host_used = host.total.saturating_sub(host.available);
    let floor = host.total / 100 * HOST_AVAILABLE_FLOOR_PERCENT;
    let host_bound = match budget.target {
        Some(target) if budget.host_share => target.min(host.total - floor),
        _ => host.total - floor,
    };
    if host.total > 0
        && let Some(bytes) = excess(host_used, host_bound).filter(|bytes| *bytes > 0)
    {
        return Some(Need {
            bytes,
            reason: SleepReason::Host,
            message: format!(
                "host memory short: {} available of {}",
                megabytes(host.available, false),
                megabytes(host.total, false)
            ),
        });
    }
    if pending == 0
        && let Some(pressure) = host.pressure.filter(|avg10| *avg10 >= PRESSURE_AVG10)
    {
        return Some(Need {
            bytes: 1,
            reason: SleepReason::Pressure,
            message: format!(
                "memory pressure: tasks waited for memory {pressure:.0}% of the last 10 s"
            ),
        });
    }
    None
}

/// `bytes` in megabytes (MiB) for a message: whole when it is, else to a tenth, rounded up
/// or down, so that a use over a bound (up) never reads as equal to the bound (down): "300.3
/// MB of ... 300 MB", "12737.2 MB of ... 12737.1 MB".
fn megabytes(bytes: u64, up: bool) -> String {
    const MB: u128 = 1 << 20;
    let tenths = u128::from(bytes) * 10;
    let tenths = if up { tenths.div_ceil(MB) } else { tenths / MB };
    if u128::from(bytes) % MB == 0 {
        format!("{} MB", tenths / 10)
    } else {
        format!("{}.{} MB", tenths / 10, tenths % 10)
    }
}

/// An instance that may be put to sleep: on demand, running, nothing in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Candidate {
    pub(super) key: InstanceKey,
    pub(super) last_activity: Instant,
    /// At its last sample; unknown counts as nothing.
    pub(super) memory: Option<u64>,
}

/// The least recently used candidates whose memory adds up to `bytes` (at least one).
pub(super) fn choose(mut candidates: Vec<Candidate>, bytes: u64) -> Vec<Candidate> {
    candidates.sort_by(|a, b| {
        a.last_activity
            .cmp(&b.last_activity)
            .then_with(|| a.key.cmp(&b.key))
    });
    let mut freed = 0u64;
    let mut chosen = Vec::new();
    for candidate in candidates {
        if freed >= bytes && !chosen.is_empty() {
            break;
        }
        freed = freed.saturating_add(candidate.memory.unwrap_or(0));
        chosen.push(candidate);
    }
    chosen
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const MB: u64 = 1 << 20;

    fn host(total_mb: u64, available_mb: u64) -> HostMemory {
        HostMemory {
            total: total_mb * MB,
            available: available_mb * MB,
            pressure: None,
        }
    }

    fn budget(target_mb: u64) -> Budget {
        Budget {
            target: Some(target_mb * MB),
            ..Budget::default()
        }
    }

    #[test]
    fn over_the_target_frees_the_excess_less_what_is_already_going() {
        let roomy = host(24_000, 20_000);
        assert_eq!(need(budget(300), 290 * MB, roomy, 0, 0), None);
        let over = need(budget(300), 360 * MB, roomy, 0, 0).unwrap();
        assert_eq!((over.bytes, over.reason), (60 * MB, SleepReason::Target));
        assert!(
            over.message.contains("360 MB of memory_target = 300 MB"),
            "{}",
            over.message
        );
        assert_eq!(
            need(budget(300), 360 * MB, roomy, 60 * MB, 0),
            None,
            "a sleep under way frees it"
        );
        // Over by less than a megabyte: the message does not read "300 MB of ... 300 MB".
        let barely = need(budget(300), 300 * MB + 300 * 1024, roomy, 0, 0).unwrap();
        assert!(
            barely
                .message
                .contains("300.3 MB of memory_target = 300 MB"),
            "{}",
            barely.message
        );
        let wake = need(Budget::default(), 0, roomy, 0, 200 * 1024).unwrap();
        assert!(
            wake.message.contains("needs 0.2 MB more"),
            "{}",
            wake.message
        );
        assert_eq!(megabytes(u64::MAX, true), "17592186044416.0 MB");
        // A target that is not whole (a share of the host) is rounded down, the use up.
        let target = 12_737 * MB + 100 * 1024;
        let close = need(
            Budget {
                target: Some(target),
                ..Budget::default()
            },
            target + 4096,
            roomy,
            0,
            0,
        )
        .unwrap();
        assert!(
            close
                .message
                .contains("12737.2 MB of memory_target = 12737.0 MB"),
            "{}",
            close.message
        );
    }

    #[test]
    fn a_wake_asking_for_room_comes_first() {
        let need = need(Budget::default(), 0, host(24_000, 20_000), 10 * MB, 50 * MB).unwrap();
        assert_eq!((need.bytes, need.reason), (40 * MB, SleepReason::Room));
        assert!(
            need.message.ends_with(
                "needs 40 MB more under memory_limit_total, beyond the 10 MB already being freed"
            ),
            "{}",
            need.message
        );
    }

    #[test]
    fn the_host_running_short_or_under_pressure_counts_too() {
        let short = need(Budget::default(), 0, host(1000, 20), 0, 0).unwrap();
        assert_eq!(short.reason, SleepReason::Host);
        assert_eq!(short.bytes, 30 * MB, "down to 5% available: 50 MB");
        // A share of the host holds the host's use to it as well.
        let share = Budget {
            host_share: true,
            ..budget(800)
        };
        assert_eq!(
            need(share, 0, host(1000, 100), 0, 0).unwrap().bytes,
            100 * MB
        );
        assert_eq!(
            need(budget(800), 0, host(1000, 100), 0, 0),
            None,
            "bytes: tenants only"
        );
        let pressed = HostMemory {
            pressure: Some(25.0),
            ..host(1000, 900)
        };
        assert_eq!(
            need(Budget::default(), 0, pressed, 0, 0).unwrap().reason,
            SleepReason::Pressure
        );
        assert_eq!(
            need(Budget::default(), 0, pressed, 1, 0),
            None,
            "one at a time"
        );
    }

    #[test]
    fn the_least_recently_used_go_first_until_enough_is_freed() {
        let t0 = Instant::now();
        let candidate = |id: &str, ago: u64, memory: Option<u64>| Candidate {
            key: InstanceKey::parse(&format!("web:{id}")).unwrap(),
            last_activity: t0 + Duration::from_secs(100 - ago),
            memory,
        };
        let candidates = vec![
            candidate("new", 1, Some(50 * MB)),
            candidate("old", 90, Some(50 * MB)),
            candidate("mid", 30, None),
            candidate("older", 60, Some(50 * MB)),
        ];
        let ids = |chosen: Vec<Candidate>| -> Vec<String> {
            chosen.into_iter().map(|c| c.key.id.to_string()).collect()
        };
        assert_eq!(ids(choose(candidates.clone(), 1)), ["old"]);
        assert_eq!(ids(choose(candidates.clone(), 60 * MB)), ["old", "older"]);
        assert_eq!(
            ids(choose(candidates.clone(), 120 * MB)),
            ["old", "older", "mid", "new"]
        );
        assert!(choose(Vec::new(), 10).is_empty());
    }
}
