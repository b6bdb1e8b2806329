//! A backend connection driven by the task of the request that holds it (see `pool`): hyper's
//! client connection, and the waker it is polled with, which drops the wakes that its driver's
//! own polls cause.
//!
//! Why: hyper's client hands a request to its connection over a channel, and a body's frames
//! back over another; each wakes whoever polled the other end last. With the connection driven
//! by the request's own task, that is the task itself (or, for a connection just taken from
//! the pool, the task that used it before), which the runtime would poll once more, all of
//! it (the client's connection, its timers), for nothing.
//!
//! Owns `Driven` and `Quiet`; imports `connector` (the socket) and `pool::SendBody`, nothing
//! else of ten's.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};

use futures_util::task::AtomicWaker;
use hyper::client::conn::http1;

use super::connector;
use super::pool::SendBody;

/// A connection as the request's task drives it: hyper's connection, polled with a waker of its
/// own (`Quiet`) that passes on to the task every wake but those that the task's own poll of
/// the connection causes (a request handed to it, a body's frame taken from it).
pub(crate) struct Driven<B: SendBody> {
    pub(super) connection: http1::Connection<connector::Stream, B>,
    quiet: Arc<Quiet>,
    waker: Waker,
}

/// The waker a connection is polled with. While the task that drives the connection polls it
/// (and what it answers), a wake only notes that the connection has more to do, and the task
/// polls it again before it waits: that wake was caused by the task itself (hyper's channels
/// to the connection wake whoever polled the connection last), and passed on, it would make
/// the runtime poll the task once more, all of it, for nothing. Any other wake (the socket is
/// ready) comes from the event loop, between polls, and goes to the task.
#[derive(Default)]
struct Quiet {
    task: AtomicWaker,
    polling: AtomicBool,
    woken: AtomicBool,
}

impl Wake for Quiet {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.polling.load(Ordering::Relaxed) {
            self.woken.store(true, Ordering::Relaxed);
        } else {
            self.task.wake();
        }
    }
}

impl<B: SendBody> Driven<B> {
    pub(super) fn new(connection: http1::Connection<connector::Stream, B>) -> Box<Self> {
        let quiet = Arc::new(Quiet::default());
        let waker = Waker::from(Arc::clone(&quiet));
        Box::new(Driven {
            connection,
            quiet,
            waker,
        })
    }

    /// Drives the connection for the task of `cx`, and polls `answer` (what the connection hands
    /// over: a response head, a body's frames), until the answer is ready or the connection has
    /// nothing more to do for now. Also whether the connection ended (then it is to be dropped).
    /// The answer is polled without a waker: only these polls of the connection can make it
    /// ready. It is polled first: a body's frame read with the response head is there already,
    /// and taken without a poll of the connection.
    pub(super) fn drive_for<T>(
        &mut self,
        cx: &mut Context<'_>,
        mut answer: impl FnMut(&mut Context<'_>) -> Poll<T>,
    ) -> (Poll<T>, bool) {
        let mut noop = Context::from_waker(Waker::noop());
        self.quiet.polling.store(true, Ordering::Relaxed);
        let ready = answer(&mut noop);
        self.quiet.polling.store(false, Ordering::Relaxed);
        if ready.is_ready() {
            return (ready, false);
        }
        self.quiet.task.register(cx.waker());
        self.quiet.woken.store(false, Ordering::Relaxed);
        let mut own = Context::from_waker(&self.waker);
        loop {
            self.quiet.polling.store(true, Ordering::Relaxed);
            let ended = self.connection.poll_without_shutdown(&mut own).is_ready();
            let polled = answer(&mut noop);
            self.quiet.polling.store(false, Ordering::Relaxed);
            if polled.is_ready() || ended || !self.quiet.woken.swap(false, Ordering::Relaxed) {
                return (polled, ended);
            }
        }
    }

    /// Polls the connection (with the waker of the task of `cx`, not the quiet one): whether it
    /// ended.
    pub(super) fn poll_ended(&mut self, cx: &mut Context<'_>) -> bool {
        self.connection.poll_without_shutdown(cx).is_ready()
    }

    /// Polls the connection while no task drives it (idle in the pool): whether it ended. It
    /// lets go of the waker of the task that drove it last.
    pub(super) fn poll_idle(&mut self) -> bool {
        let _ = self.quiet.task.take();
        self.poll_ended(&mut Context::from_waker(Waker::noop()))
    }

    /// Sends `request`, which wakes whoever polled the connection last: quietly (see `Quiet`),
    /// since the task that sends drives the connection next.
    pub(super) fn send<R>(&mut self, send: impl FnOnce() -> R) -> R {
        self.quiet.polling.store(true, Ordering::Relaxed);
        let sent = send();
        self.quiet.polling.store(false, Ordering::Relaxed);
        sent
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;

    /// A task's waker that counts its wakes.
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_wake_during_the_drivers_poll_is_noted_and_any_other_goes_to_the_task() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let task = Waker::from(Arc::clone(&count));
        let quiet = Arc::new(Quiet::default());
        let waker = Waker::from(Arc::clone(&quiet));
        quiet.task.register(&task);
        // The driver polls: a wake (its own doing) is noted for it, not passed on.
        quiet.polling.store(true, Ordering::Relaxed);
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 0);
        assert!(quiet.woken.swap(false, Ordering::Relaxed));
        // Between polls (the socket is ready): the task is woken.
        quiet.polling.store(false, Ordering::Relaxed);
        waker.wake_by_ref();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(!quiet.woken.load(Ordering::Relaxed));
    }
}
