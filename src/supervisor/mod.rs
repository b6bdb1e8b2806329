//! Supervision of one instance: a pure state machine (`machine`), the pure launch builder
//! (`launch`), the task that runs the machine, executing its effects through the runtime
//! (`task`), what the proxy and the task share (`gate`) and the messages they all speak
//! (`messages`). `gate` and `task` both import `messages`; `gate` never imports `task`.

pub(crate) mod gate;
pub(crate) mod launch;
pub(crate) mod machine;
pub mod messages;
pub(crate) mod task;
