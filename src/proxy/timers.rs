//! The proxy's timers (a request's wait for its response, a wake's wait, the pool's upkeep)
//! are kept by a runtime of their own, on a thread of its own, not by the proxy workers.
//!
//! A worker's runtime then has no timer at all (built without tokio's time driver), so it
//! waits for I/O without a timeout and reads no clock around its waits. A timeout costs the
//! kernel a timer armed and cancelled around every wait: on a virtual machine that can mean
//! two exits to the hypervisor, twice per proxied request when traffic is light (measured on
//! this project's 2-vCPU VM: see bench/README.md). A timer kept here is
//! still polled by the worker's task, and wakes it from this thread when it goes off.
//!
//! The runtime is never shut down, so a worker never polls a timer whose runtime is gone
//! (tokio panics then), however the process ends.

use std::future::Future;
use std::io;

use tokio::runtime::{Builder, Handle};
use tokio::time::{Instant, Sleep, Timeout};

#[derive(Clone, Debug)]
pub(crate) struct Timers(Handle);

impl Timers {
    /// Starts the thread that keeps the timers, for as long as the process runs.
    pub(crate) fn start() -> io::Result<Timers> {
        let runtime = Builder::new_current_thread().enable_time().build()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("ten-timers".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))?;
        Ok(Timers(handle))
    }

    /// The current runtime's timers (for tests).
    #[cfg(test)]
    pub(crate) fn current() -> Timers {
        Timers(Handle::current())
    }

    pub(crate) fn sleep_until(&self, deadline: Instant) -> Sleep {
        let _timers = self.0.enter();
        tokio::time::sleep_until(deadline)
    }

    pub(crate) fn timeout_at<F: Future>(&self, deadline: Instant, future: F) -> Timeout<F> {
        let _timers = self.0.enter();
        tokio::time::timeout_at(deadline, future)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timers_work_on_a_runtime_without_a_time_driver() {
        let timers = Timers::start().unwrap();
        // Like a worker with no timer of its own: tokio's own sleep would panic here.
        let runtime = Builder::new_current_thread().enable_io().build().unwrap();
        runtime.block_on(async {
            let started = Instant::now();
            timers
                .sleep_until(started + Duration::from_millis(20))
                .await;
            assert!(started.elapsed() >= Duration::from_millis(20));
            let never = std::future::pending::<()>();
            let limit = Instant::now() + Duration::from_millis(20);
            assert!(timers.timeout_at(limit, never).await.is_err());
        });
    }
}
