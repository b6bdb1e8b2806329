//! The rule that bad input never destroys a tenant, applied where the planner takes its
//! input: only a *valid* desired state that no longer declares an instance removes it.
//!
//! A reload with errors (a file that cannot be read or parsed for any reason, a service
//! renamed or removed while files name it, an unreadable `instances/`) may lack instances
//! the last valid state declared. Each of them keeps its last declaration, service template
//! included, and is reported frozen. Pure: no file, no clock.

use std::sync::Arc;

use crate::names::InstanceKey;

use super::DesiredState;

/// Carries into `next` (from a reload with errors) every instance of `previous` it lacks,
/// with its spec and, when `next` lost it, its service template. Returns the keys kept, in
/// order.
pub fn keep_undeclared(previous: &DesiredState, next: &mut DesiredState) -> Vec<InstanceKey> {
    let mut kept = Vec::new();
    for (key, spec) in &previous.instances {
        if next.instances.contains_key(key) {
            continue;
        }
        next.instances.insert(key.clone(), Arc::clone(spec));
        if let Some(service) = previous.config.services.get(&key.service) {
            next.config
                .services
                .entry(key.service.clone())
                .or_insert_with(|| service.clone());
        }
        kept.push(key.clone());
    }
    kept
}

/// Makes `next` hold `previous`'s spec of every instance whose spec did not change, so a
/// reload keeps one copy of each: the tasks and the observed state hold the specs they were
/// given, and a reload that made new equal ones kept both (with 10,000 instances, 28 MB more
/// after each resync). Returns how many were shared.
///
/// The keys too: a reload makes new ones, and every table made before it (observed, tasks,
/// routes, ports) holds the previous ones; `next` takes those, in its map and in its changed
/// specs, so a reload does not keep each instance's names twice.
pub fn share_unchanged(previous: &DesiredState, next: &mut DesiredState) -> usize {
    let mut shared = 0;
    let instances = std::mem::take(&mut next.instances);
    next.instances = instances
        .into_iter()
        .map(|(key, mut spec)| {
            let Some((old_key, old)) = previous.instances.get_key_value(&key) else {
                return (key, spec);
            };
            if !Arc::ptr_eq(old, &spec) && *old == spec {
                spec = Arc::clone(old);
                shared += 1;
            } else if let Some(fresh) = Arc::get_mut(&mut spec) {
                fresh.key = old_key.clone();
            }
            (old_key.clone(), spec)
        })
        .collect();
    shared
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse_config;
    use crate::desired::resolve;

    fn desired(text: &str) -> DesiredState {
        let mut diagnostics = Vec::new();
        let config = parse_config(
            Path::new("/srv/app/tenement.toml"),
            text.into(),
            &mut diagnostics,
        )
        .config
        .unwrap_or_else(|| panic!("{diagnostics:?}"));
        resolve(config, &[], &mut diagnostics)
    }

    fn keys(desired: &DesiredState) -> Vec<String> {
        desired.instances.keys().map(ToString::to_string).collect()
    }

    #[test]
    fn a_reload_keeps_the_previous_copy_of_every_unchanged_spec() {
        let text =
            "[service.notes]\ncommand = \"./notes\"\n[instances]\nnotes = [\"alice\", \"bob\"]\n";
        let previous = desired(text);
        let mut next =
            desired(&text.replace("[\"alice\", \"bob\"]", "[\"alice\", \"bob\", \"carol\"]"));
        let key = |name: &str| InstanceKey::parse(name).unwrap();
        assert!(!Arc::ptr_eq(
            &previous.instances[&key("notes:alice")],
            &next.instances[&key("notes:alice")]
        ));
        assert_eq!(share_unchanged(&previous, &mut next), 2);
        for name in ["notes:alice", "notes:bob"] {
            assert!(Arc::ptr_eq(
                &previous.instances[&key(name)],
                &next.instances[&key(name)]
            ));
        }
        // A changed spec is the new one.
        let mut changed = desired(&text.replace("./notes", "./notes2"));
        assert_eq!(share_unchanged(&previous, &mut changed), 0);
        assert!(!Arc::ptr_eq(
            &previous.instances[&key("notes:alice")],
            &changed.instances[&key("notes:alice")]
        ));
    }

    #[test]
    fn a_reload_keeps_the_previous_keys_in_its_map_and_in_its_changed_specs() {
        let text =
            "[service.notes]\ncommand = \"./notes\"\n[instances]\nnotes = [\"alice\", \"bob\"]\n";
        let previous = desired(text);
        let mut next = desired(
            &text
                .replace("./notes", "./notes2")
                .replace("[\"alice\", \"bob\"]", "[\"alice\", \"bob\", \"carol\"]"),
        );
        let declared = |state: &DesiredState, name: &str| {
            let (key, spec) = state
                .instances
                .get_key_value(&InstanceKey::parse(name).unwrap())
                .unwrap();
            (key.clone(), spec.key.clone())
        };
        let (alice, _) = declared(&previous, "notes:alice");
        assert!(!declared(&next, "notes:alice").0.shares_names_with(&alice));
        assert_eq!(share_unchanged(&previous, &mut next), 0);
        for name in ["notes:alice", "notes:bob"] {
            let (old, _) = declared(&previous, name);
            let (key, spec_key) = declared(&next, name);
            assert!(key.shares_names_with(&old), "{name}: the map's key");
            assert!(spec_key.shares_names_with(&old), "{name}: the spec's key");
        }
    }

    #[test]
    fn a_lost_instance_keeps_its_spec_and_a_lost_service_its_template() {
        let previous = desired(
            "[service.notes]\ncommand = \"./notes\"\n[service.api]\ncommand = \"./api\"\n\
             [instances]\nnotes = [\"alice\", \"bob\"]\napi = [\"one\"]\n",
        );
        // `notes` renamed: its instances are gone from the new state, with the service.
        let mut next = desired(
            "[service.notez]\ncommand = \"./notes\"\n[service.api]\ncommand = \"./api -v\"\n\
             [instances]\napi = [\"one\", \"two\"]\n",
        );
        let kept = keep_undeclared(&previous, &mut next);
        let kept: Vec<String> = kept.iter().map(ToString::to_string).collect();
        assert_eq!(kept, ["notes:alice", "notes:bob"]);
        assert_eq!(
            keys(&next),
            ["api:one", "api:two", "notes:alice", "notes:bob"]
        );
        let alice = InstanceKey::parse("notes:alice").unwrap();
        assert!(Arc::ptr_eq(
            &next.instances[&alice],
            &previous.instances[&alice]
        ));
        assert!(next.config.services.contains_key(&alice.service));
        // What the new state declares wins: api:one has the new command.
        let one = InstanceKey::parse("api:one").unwrap();
        assert!(!Arc::ptr_eq(
            &next.instances[&one],
            &previous.instances[&one]
        ));
    }

    #[test]
    fn nothing_is_kept_when_the_new_state_declares_everything() {
        let previous = desired("[service.web]\ncommand = \"./w\"\n[instances]\nweb = [\"a\"]\n");
        let mut next = desired("[service.web]\ncommand = \"./w\"\n[instances]\nweb = [\"a\"]\n");
        assert!(keep_undeclared(&previous, &mut next).is_empty());
    }
}
