//! Runs, their medians, and a proxy against nginx round by round: the median of the ratios,
//! with an interval from order statistics, and a verdict beside nginx against itself.

/// What one load run measured: requests per second, p50 and p99 latency, and the CPU time
/// the proxy's processes spent per request, in user space and in the kernel.
#[derive(Clone, Copy)]
pub(crate) struct Run {
    pub rps: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub user_us: f64,
    pub system_us: f64,
}

/// The median of each figure over runs.
pub(crate) fn medians(runs: &[Run]) -> Run {
    let median = |pick: fn(&Run) -> f64| median_of(runs.iter().map(pick).collect());
    Run {
        rps: median(|r| r.rps),
        p50_ms: median(|r| r.p50_ms),
        p99_ms: median(|r| r.p99_ms),
        user_us: median(|r| r.user_us),
        system_us: median(|r| r.system_us),
    }
}

/// The median; of an even count, the mean of the middle two.
pub(crate) fn median_of(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    let middle = values.len() / 2;
    if values.len() % 2 == 0 {
        (values[middle - 1] + values[middle]) / 2.0
    } else {
        values[middle]
    }
}

/// A proxy against nginx, round by round.
pub(crate) struct Rounds {
    pub rps_ratios: Vec<String>,
    pub rps: Interval,
    pub p99: Interval,
    /// CPU time per request (user and system) against nginx's.
    pub cpu: Interval,
    /// Rounds in which the proxy served at least as many requests as nginx.
    pub won: usize,
}

impl Rounds {
    pub(crate) fn new(proxy: &[Run], nginx: &[Run]) -> Rounds {
        let ratios = |pick: fn(&Run) -> f64| -> Vec<f64> {
            proxy
                .iter()
                .zip(nginx)
                .map(|(p, n)| pick(p) / pick(n))
                .collect()
        };
        let rps = ratios(|run| run.rps);
        let p99 = ratios(|run| run.p99_ms);
        let cpu = ratios(|run| run.user_us + run.system_us);
        Rounds {
            rps_ratios: rps.iter().map(|ratio| format!("{ratio:.2}")).collect(),
            won: rps.iter().filter(|ratio| **ratio >= 1.0).count(),
            rps: Interval::of_median(rps),
            p99: Interval::of_median(p99),
            cpu: Interval::of_median(cpu),
        }
    }

    /// Throughput against nginx, and beside it how nginx measures against itself
    /// (`control`): how far apart two identical proxies land on this machine.
    pub(crate) fn rps_verdict(&self, control: &Rounds) -> String {
        verdict(
            &self.rps,
            &control.rps,
            Better::Higher,
            "ten ahead",
            "ten behind",
        )
    }

    /// p99 latency against nginx, with the control beside it.
    pub(crate) fn p99_verdict(&self, control: &Rounds) -> String {
        verdict(
            &self.p99,
            &control.p99,
            Better::Lower,
            "ten's lower",
            "ten's higher",
        )
    }

    /// CPU time per request against nginx's, with the control beside it.
    pub(crate) fn cpu_verdict(&self, control: &Rounds) -> String {
        verdict(
            &self.cpu,
            &control.cpu,
            Better::Lower,
            "ten's lower",
            "ten's higher",
        )
    }
}

/// Which way a ratio to nginx is better.
#[derive(Clone, Copy)]
enum Better {
    Higher,
    Lower,
}

/// `better` when the whole interval of the ratio is on the better side of 1, `worse` when it
/// is on the worse side, else level; with the control's interval beside it.
fn verdict(ratio: &Interval, control: &Interval, way: Better, better: &str, worse: &str) -> String {
    let (low, high) = match way {
        Better::Higher => (ratio.low, ratio.high),
        // Mirrored, so that the test below reads the same: the inverse of a ratio.
        Better::Lower => (1.0 / ratio.high, 1.0 / ratio.low),
    };
    let verdict = if low >= 1.0 {
        better
    } else if high < 1.0 {
        worse
    } else {
        "level"
    };
    format!("{verdict} ({ratio}; nginx against itself: {control})")
}

/// A sample's median, and an interval that holds the true median with probability `coverage`.
pub(crate) struct Interval {
    pub median: f64,
    pub low: f64,
    pub high: f64,
    pub coverage: f64,
}

impl Interval {
    /// `low..high`.
    pub(crate) fn range(&self) -> String {
        format!("{:.2}..{:.2}", self.low, self.high)
    }

    /// The narrowest interval between order statistics, `[x(k), x(n+1-k)]`, that holds the
    /// median with at least 88% probability: it does unless k or more of the n values fall on
    /// one side of it, each with probability 1/2 (the values being independent).
    pub(crate) fn of_median(mut values: Vec<f64>) -> Interval {
        values.sort_by(f64::total_cmp);
        let n = values.len();
        let median = median_of(values.clone());
        // P(X <= j) for X ~ Binomial(n, 1/2), for each j.
        let mut below = Vec::with_capacity(n + 1);
        let (mut choose, mut sum) = (1.0_f64, 0.0_f64);
        for j in 0..=n {
            sum += choose / 2f64.powi(n as i32);
            below.push(sum);
            choose = choose * (n - j) as f64 / (j + 1) as f64;
        }
        let mut k = 1;
        while k < n.div_ceil(2) && 1.0 - 2.0 * below[k] >= 0.88 {
            k += 1;
        }
        Interval {
            median,
            low: values[k - 1],
            high: values[n - k],
            coverage: 1.0 - 2.0 * below[k - 1],
        }
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:.2}, {}", self.median, self.range())
    }
}
