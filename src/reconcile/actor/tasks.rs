//! The instance tasks: each made with its port and first command, replaced (side by side on a
//! new port, or in place), forgotten with its port, output capture and data, and its status
//! taken in. Decides nothing (the core says which); must not import the API, the proxy or the
//! server.

use std::path::PathBuf;
use std::sync::Arc;

use crate::desired::InstanceSpec;
use crate::names::InstanceKey;
use crate::runtime::Runtime;
use crate::runtime::ports::port_is_free;
use crate::supervisor::messages::Command;
use crate::supervisor::task::{spawn_asleep, spawn_instance};

use super::super::core::{Event, First, Note, PortWish};
use super::{Reconciler, Retiring, Slot};

impl<R: Runtime> Reconciler<R> {
    /// Makes the task of `key`: its port, the task and its first command (its output capture
    /// was set up with its round, see `event`).
    pub(super) fn spawn(
        &mut self,
        key: InstanceKey,
        spec: Arc<InstanceSpec>,
        wish: PortWish,
        first: First,
    ) -> Event {
        let port = if spec.listen == crate::config::Listen::None {
            // A worker listens nowhere: it takes no port of port_range.
            Ok(0)
        } else {
            let mut ports = self.shared.ports.lock().unwrap_or_else(|p| p.into_inner());
            match wish {
                PortWish::Any => ports.allocate(&key, None, port_is_free),
                PortWish::Prefer(port) => ports.allocate(&key, Some(port), port_is_free),
                PortWish::Reserve(port) => {
                    ports.reserve(&key, port);
                    Ok(port)
                }
            }
        };
        let port = match port {
            Ok(port) => port,
            Err(error) => {
                return Event::SpawnRefused {
                    key,
                    error: error.to_string(),
                };
            }
        };
        let settings = self.settings();
        let shared = Arc::clone(&self.shared);
        let (handle, gate) = match first {
            First::Asleep => spawn_asleep(shared, spec, &settings, port),
            first => {
                let (handle, gate) =
                    spawn_instance(shared, Arc::clone(&spec), &settings, port, None);
                handle.send(match first {
                    First::Adopt(adoption) => Command::Adopt(Box::new(adoption)),
                    _ => Command::Start(spec),
                });
                (handle, gate)
            }
        };
        self.slots.insert(key.clone(), Slot { handle, gate });
        Event::Spawned { key, port }
    }

    /// A replace: next to the old process when the core says it can and a port is free (the
    /// new one takes the traffic when healthy, the old one then drains and stops), else a
    /// restart in place.
    pub(super) fn replace(
        &mut self,
        key: InstanceKey,
        spec: Arc<InstanceSpec>,
        side_by_side: bool,
        reason: String,
    ) {
        let beside = side_by_side && self.replace_side_by_side(&key, &spec);
        let message = if beside {
            "starting the new process next to the old one, which serves until it is healthy"
        } else {
            if let Some(slot) = self.slots.get(&key) {
                slot.handle.send(Command::Replace(spec));
            }
            "restarting with the new spec"
        };
        self.record_note(Note {
            instance: Some(key),
            action: "replace".into(),
            message: message.into(),
            reason: Some(reason),
            warning: false,
        });
    }

    /// The new process of a replace, on a new port, sharing the old one's gate. False when no
    /// port is free.
    fn replace_side_by_side(&mut self, key: &InstanceKey, spec: &Arc<InstanceSpec>) -> bool {
        let settings = self.settings();
        let Some(slot) = self.slots.get(key) else {
            return false;
        };
        let old_port = slot.handle.status.borrow().port;
        let port = {
            let mut ports = self.shared.ports.lock().unwrap_or_else(|p| p.into_inner());
            match ports.allocate(key, None, port_is_free) {
                Ok(port) => port,
                Err(_) => return false,
            }
        };
        let (handle, gate) = spawn_instance(
            Arc::clone(&self.shared),
            Arc::clone(spec),
            &settings,
            port,
            Some(Arc::clone(&slot.gate)),
        );
        handle.send(Command::Start(Arc::clone(spec)));
        gate.set_owner(handle.owner());
        let Some(slot) = self.slots.get_mut(key) else {
            return false;
        };
        let old = std::mem::replace(&mut slot.handle, handle);
        old.send(Command::RetireAfter(slot.handle.status.clone()));
        self.retiring.push(Retiring {
            key: key.clone(),
            handle: old,
            port: old_port,
        });
        true
    }

    /// A task ended: its slot, port and output capture go; its data too if asked.
    pub(super) fn forget(&mut self, key: InstanceKey, port: u16, remove_data: Option<PathBuf>) {
        self.slots.remove(&key);
        self.shared
            .ports
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(port);
        let logs = Arc::clone(&self.shared.logs);
        tokio::task::spawn_blocking(move || {
            logs.detach(&key, true);
            if let Some(dir) = remove_data
                && let Err(error) = std::fs::remove_dir_all(&dir)
                && error.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(instance = %key, %error, "cannot remove the data directory");
            }
        });
    }

    /// Takes in the new status of `key`'s tasks: a retired process that is gone gives its
    /// port back; the current task's status goes to the core.
    pub(super) async fn refresh(&mut self, key: &InstanceKey) {
        let mut ports = Vec::new();
        self.retiring.retain(|retiring| {
            let gone = retiring.key == *key && retiring.handle.status.borrow().removed;
            if gone {
                ports.push(retiring.port);
            }
            !gone
        });
        if !ports.is_empty() {
            let mut allocator = self.shared.ports.lock().unwrap_or_else(|p| p.into_inner());
            for port in ports {
                allocator.release(port);
            }
        }
        let Some(status) = self
            .slots
            .get(key)
            .map(|slot| slot.handle.status.borrow().clone())
        else {
            return;
        };
        self.event(Event::Status {
            key: key.clone(),
            status,
        })
        .await;
    }
}
