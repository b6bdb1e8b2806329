//! What is executed: the command line for each isolation, the user the tenant runs as, and
//! the environment of what is executed. Imports only `error` and [`SpawnEnv`] of `process`;
//! must not import what imports `process` (`os`, `exec_probe`).

use crate::config::Isolation;

use super::super::launch::Launch;
use super::SpawnEnv;
use super::error::SpawnError;

pub(crate) fn resolve_user(user: &str) -> Result<(u32, u32), SpawnError> {
    let found = match user.parse::<u32>() {
        Ok(uid) => nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)),
        Err(_) => nix::unistd::User::from_name(user),
    };
    match found {
        Ok(Some(found)) => Ok((found.uid.as_raw(), found.gid.as_raw())),
        _ => Err(SpawnError::NoSuchUser {
            user: user.to_string(),
        }),
    }
}

/// The uid and gid of the tenant's `user`, if it has one; an isolation other than `process`
/// needs ten to run as root.
pub(super) fn tenant_user(launch: &Launch) -> Result<Option<UserIds>, SpawnError> {
    let root = nix::unistd::geteuid().is_root();
    if launch.isolation != Isolation::Process && !root {
        return Err(SpawnError::NeedsRoot {
            isolation: launch.isolation.as_str(),
        });
    }
    launch.user.as_deref().map(resolve_user).transpose()
}

/// A user's uid and gid.
type UserIds = (u32, u32);

/// The command line executed for `isolation`, and the user to become between fork and exec:
/// the tenant's program as that user (`process`), ten's init in front of it (`namespace`),
/// or runsc with a bundle written for process `name` (`sandbox`); the init and the sandbox
/// make the tenant its user themselves.
pub(super) fn command_line(
    launch: &Launch,
    host: &SpawnEnv,
    program: &str,
    user: Option<UserIds>,
    name: &str,
) -> Result<(Vec<String>, Option<UserIds>), SpawnError> {
    // A relative program with a slash is relative to the workdir, not to ten's.
    let program_path = if program.contains('/') && !program.starts_with('/') {
        launch.workdir.join(program).display().to_string()
    } else {
        program.to_string()
    };
    let mut tenant_argv = launch.argv.clone();
    tenant_argv[0] = program_path;
    match launch.isolation {
        Isolation::Process => Ok((tenant_argv, user)),
        Isolation::Namespace => {
            let init = host.init_program.as_ref().ok_or(SpawnError::NoInit)?;
            let mut argv = vec![
                init.display().to_string(),
                super::super::init::SUBCOMMAND.into(),
            ];
            if let Some((uid, gid)) = user {
                argv.extend([format!("--uid={uid}"), format!("--gid={gid}")]);
            }
            argv.push("--".into());
            argv.extend(tenant_argv);
            // The init needs root for the namespaces; the tenant becomes the user.
            Ok((argv, None))
        }
        Isolation::Sandbox => {
            let sandbox = host.sandbox.as_ref().ok_or(SpawnError::NoRunsc)?;
            let mut inside = launch.clone();
            inside.argv = tenant_argv;
            inside.uid = user.map(|(uid, _)| uid);
            inside.gid = user.map(|(_, gid)| gid);
            let argv = sandbox
                .prepare(&inside, name)
                .map_err(SpawnError::Sandbox)?;
            Ok((argv, None))
        }
    }
}

/// The environment of what is executed: the tenant's own, except for a sandbox, whose
/// tenant environment is in the bundle while runsc gets a plain one.
pub(super) fn program_env(launch: &Launch) -> Vec<(String, String)> {
    if launch.isolation == Isolation::Sandbox {
        vec![(
            "PATH".into(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into(),
        )]
    } else {
        launch.env.clone()
    }
}
