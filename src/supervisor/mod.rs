//! Supervision of one instance: a pure state machine (`machine`), the pure launch builder
//! (`launch`) and the task that runs the machine, executing its effects through the runtime
//! (`task`).

pub mod gate;
pub mod launch;
pub mod machine;
pub mod task;
