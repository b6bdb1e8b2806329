//! Supervision of one instance: a pure state machine (`machine`), the pure launch builder
//! (`launch`), the task that runs the machine, executing its effects through the runtime
//! (`task`), what the proxy and the task share (`gate`), the messages they all speak
//! (`messages`, a status published in a `cell`), where commands go before and after a sleeping instance's task is made
//! (`mailbox`), the admission of wakes under a memory limit (`admission`, shared by the
//! gates and the reconciler) and the last usage sample the task and the reconciler share
//! (`usage`). `gate` and `task` both import `messages`; `gate` never imports `task`.

pub(crate) mod admission;
pub mod cell;
pub(crate) mod gate;
pub(crate) mod launch;
pub(crate) mod machine;
pub(crate) mod mailbox;
pub mod messages;
pub(crate) mod task;
pub(crate) mod usage;
