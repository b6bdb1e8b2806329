//! Which names get a certificate: the root domain, `SERVICE.DOMAIN` for each service that
//! takes traffic by weight, `ID.SERVICE.DOMAIN` for each declared instance (but workers,
//! which answer no HTTP), and each `[routing.subdomain]` label. Pure: nothing else is ever
//! ordered, so no request can make ten ask the CA for a name.

use std::collections::BTreeSet;

use crate::desired::DesiredState;

/// The names `desired` routes under `domain` (lowercase), sorted.
pub(crate) fn certificate_names(domain: &str, desired: &DesiredState) -> BTreeSet<String> {
    let domain = domain.to_ascii_lowercase();
    let mut names = BTreeSet::from([domain.clone()]);
    for (key, spec) in &desired.instances {
        if spec.listen == crate::config::Listen::None {
            // A worker answers no HTTP: nothing to serve under its name.
            continue;
        }
        names.insert(format!("{}.{}.{domain}", key.id, key.service));
        if spec.weight > 0 {
            names.insert(format!("{}.{domain}", key.service));
        }
    }
    for label in desired.config.routing.subdomain.keys() {
        names.insert(format!("{}.{domain}", label.to_ascii_lowercase()));
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn desired(config: &str, files: &[(&str, &str)]) -> DesiredState {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tenement.toml"), config).unwrap();
        for (path, text) in files {
            let path = dir.path().join("instances").join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        let loaded = crate::desired::load(&dir.path().join("tenement.toml"));
        loaded.desired.unwrap_or_else(|| {
            panic!(
                "{}",
                crate::render::render_diagnostics(
                    &loaded.diagnostics,
                    Path::new(""),
                    crate::render::Style::PLAIN
                )
            )
        })
    }

    #[test]
    fn declared_instances_weighted_services_and_subdomains_are_named() {
        let desired = desired(
            "[service.notes]\ncommand = \"x\"\n[service.api]\ncommand = \"x\"\n\
             [instances]\nnotes = [\"alice\", \"bob\"]\n\
             [routing.subdomain]\nwww = \"notes:alice\"\n",
            &[("api/prod.toml", "weight = 0\n")],
        );
        let names: Vec<String> = certificate_names("Example.com", &desired)
            .into_iter()
            .collect();
        assert_eq!(
            names,
            [
                "alice.notes.example.com",
                "bob.notes.example.com",
                "example.com",
                "notes.example.com",
                "prod.api.example.com",
                "www.example.com",
            ]
        );
    }
}
