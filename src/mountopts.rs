//! `-o` options: every program option may also be given as `-o name=value` (fstab and mount(8)
//! run `imapfs SOURCE MOUNTPOINT -o OPTS`), and the standard mount options are understood or
//! ignored as sshfs does. The translation looks names up in the clap definition, so an option
//! added to `cli::Args` works as `-o` without a change here.

use std::ffi::OsString;

use fuser::{Config, MountOption, SessionACL};

/// Rewrite `-o a_b=v,c` into `--a-b=v` for every `-o` name that is a long option of `cmd`; what
/// is left stays in one `-o` for [`config`]. An option after `--` is left alone.
pub fn translate(argv: Vec<OsString>, cmd: &clap::Command) -> Result<Vec<OsString>, String> {
    let mut it = argv.into_iter();
    let mut out: Vec<OsString> = it.next().into_iter().collect();
    let (mut longs, mut rest, mut mount) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(arg) = it.next() {
        let opts = match arg.to_str() {
            Some("--") => {
                rest.push(arg);
                rest.extend(it.by_ref());
                break;
            }
            Some("-o") => match it.next() {
                Some(v) => v,
                None => {
                    rest.push(arg);
                    break;
                }
            },
            Some(s) if s.starts_with("-o") && !s.starts_with("--") => OsString::from(&s[2..]),
            // `-fo OPTS`, `-dfoOPTS`: flags clustered before the o
            Some(s) if cluster_o(s, cmd).is_some() => {
                let (flags, value) = cluster_o(s, cmd).unwrap_or_default();
                rest.push(OsString::from(flags));
                match value {
                    Some(v) => OsString::from(v),
                    None => match it.next() {
                        Some(v) => v,
                        None => {
                            rest.push("-o".into());
                            break;
                        }
                    },
                }
            }
            _ => {
                rest.push(arg);
                continue;
            }
        };
        let opts = opts
            .into_string()
            .map_err(|_| "-o: options must be valid UTF-8".to_string())?;
        for opt in split_options(&opts) {
            match program_option(&opt, cmd)? {
                Some(long) => longs.push(OsString::from(long)),
                None => mount.push(opt),
            }
        }
    }
    out.extend(longs);
    if !mount.is_empty() {
        out.push("-o".into());
        out.push(mount.join(",").into());
    }
    out.extend(rest);
    Ok(out)
}

/// `-abo[VALUE]` where a, b are short flags that take no value: (`-ab`, VALUE if attached).
fn cluster_o<'a>(arg: &'a str, cmd: &clap::Command) -> Option<(&'a str, Option<&'a str>)> {
    let body = arg.strip_prefix('-').filter(|b| !b.starts_with('-'))?;
    let at = body.find('o')?;
    let is_flag = |c: char| {
        cmd.get_arguments()
            .any(|a| a.get_short() == Some(c) && !a.get_action().takes_values())
    };
    if at == 0 || !body[..at].chars().all(is_flag) {
        return None;
    }
    let value = &body[at + 1..];
    Some((&arg[..at + 1], (!value.is_empty()).then_some(value)))
}

/// Split at commas; `\,` is a comma inside a value and `\\` a backslash (as libfuse's fuse_opt).
fn split_options(s: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.last_mut().unwrap().extend(chars.next()),
            ',' => out.push(String::new()),
            c => out.last_mut().unwrap().push(c),
        }
    }
    out.retain(|o| !o.is_empty());
    out
}

/// `name[=value]` as `--long-name[=value]` when `name` (with `_` for `-`) is a long option.
fn program_option(opt: &str, cmd: &clap::Command) -> Result<Option<String>, String> {
    let (name, value) = match opt.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (opt, None),
    };
    let long = name.replace('_', "-");
    let Some(arg) = cmd.get_arguments().find(|a| {
        a.get_long() == Some(long.as_str()) && !matches!(a.get_id().as_str(), "help" | "version")
    }) else {
        return Ok(None);
    };
    let takes_value = arg.get_action().takes_values();
    match (takes_value, value) {
        (true, Some(v)) => Ok(Some(format!("--{long}={v}"))),
        (true, None) => Err(format!("-o {name} needs a value: -o {name}=VALUE")),
        (false, None) => Ok(Some(format!("--{long}"))),
        (false, Some(_)) => Err(format!("-o {name} takes no value")),
    }
}

/// What the `-o` mount options ask for beyond fuser's configuration.
#[derive(Debug)]
pub struct MountPlan {
    pub config: Config,
    /// Mount over a directory that is not empty or already a mount point.
    pub nonempty: bool,
    /// Detach the mount when the process dies, however it dies.
    pub auto_unmount: bool,
}

/// fuser configuration from the `-o` mount options. The mount is always read-only, nosuid and
/// nodev; `rw`, `dev` and `suid` (which mount(8) adds on its own) change nothing.
pub fn config(options: &[String], fsname: &str) -> Result<MountPlan, String> {
    let mut cfg = Config::default();
    cfg.mount_options = vec![
        MountOption::FSName(fsname.to_string()),
        MountOption::Subtype("imapfs".into()),
        MountOption::RO,
        MountOption::NoSuid,
        MountOption::NoDev,
    ];
    let (mut nonempty, mut auto_unmount) = (false, false);
    for opt in options.iter().flat_map(|o| split_options(o)) {
        match opt.as_str() {
            "ro" | "rw" | "nodev" | "dev" | "nosuid" | "suid" | "defaults" => {}
            // What fstab, mount(8) and systemd use themselves: nothing for the filesystem.
            "_netdev" | "user" | "users" | "nouser" | "owner" | "group" | "noauto" | "auto"
            | "nofail" | "relatime" | "strictatime" | "lazytime" | "nodiratime" | "sync"
            | "async" | "dirsync" | "loud" | "silent" => {}
            o if o.starts_with("x-") || o.starts_with("comment=") => {}
            "nonempty" => nonempty = true,
            "auto_unmount" => auto_unmount = true,
            "allow_other" => cfg.acl = SessionACL::All,
            "allow_root" => cfg.acl = SessionACL::RootAndOwner,
            "default_permissions" => push(&mut cfg, MountOption::DefaultPermissions),
            "noexec" => push(&mut cfg, MountOption::NoExec),
            "exec" => cfg.mount_options.retain(|o| *o != MountOption::NoExec),
            "noatime" => push(&mut cfg, MountOption::NoAtime),
            "atime" => cfg.mount_options.retain(|o| *o != MountOption::NoAtime),
            o if o.starts_with("fsname=") || o.starts_with("subtype=") => {
                return Err(format!("-o {o}: set by imapfs itself"))
            }
            o => {
                return Err(format!(
                    "unknown option -o {o} (imapfs --help lists the options)"
                ))
            }
        }
    }
    // Others may read the mount only under the kernel's permission checks (files are 0444
    // and owned by the mounting user, so this keeps the mode bits meaningful).
    if cfg.acl != SessionACL::Owner {
        push(&mut cfg, MountOption::DefaultPermissions);
    }
    // Several workers: a slow fetch must not hold up an unrelated ls or stat.
    cfg.n_threads = Some(8);
    cfg.clone_fd = true;
    Ok(MountPlan {
        config: cfg,
        nonempty,
        auto_unmount,
    })
}

fn push(cfg: &mut Config, opt: MountOption) {
    if !cfg.mount_options.contains(&opt) {
        cfg.mount_options.push(opt);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn tr(args: &[&str]) -> Result<Vec<String>, String> {
        let argv = args.iter().map(OsString::from).collect();
        translate(argv, &crate::cli::Args::command())
            .map(|v| v.into_iter().map(|s| s.into_string().unwrap()).collect())
    }

    #[test]
    fn program_options_from_o() {
        let got = tr(&[
            "imapfs",
            "imaps://a@b",
            "/mnt",
            "-o",
            "rw,nosuid,password_command=pass mail,cache_size=64M",
            "-oconnections=2,foreground,x-systemd.automount",
        ])
        .unwrap();
        assert_eq!(
            got,
            [
                "imapfs",
                "--password-command=pass mail",
                "--cache-size=64M",
                "--connections=2",
                "--foreground",
                "-o",
                "rw,nosuid,x-systemd.automount",
                "imaps://a@b",
                "/mnt"
            ]
        );
        // clap accepts the result, and a value may hold an escaped comma.
        let argv = tr(&["imapfs", "u", "/m", "-o", r"ca_file=/a\,b,timeout=7"]).unwrap();
        assert_eq!(argv[1], "--ca-file=/a,b");
        let args = <crate::cli::Args as clap::Parser>::try_parse_from(argv).unwrap();
        assert_eq!(args.timeout, 7);
        assert_eq!(args.ca_file.unwrap().to_str(), Some("/a,b"));
        assert!(tr(&["imapfs", "-o", "timeout"])
            .unwrap_err()
            .contains("value"));
        assert!(tr(&["imapfs", "-o", "insecure=1"]).is_err());
        // -o clustered after short flags
        let got = tr(&["imapfs", "-fo", "timeout=3", "-dfotimeout=4", "-fx"]).unwrap();
        assert_eq!(
            got,
            ["imapfs", "--timeout=3", "--timeout=4", "-f", "-df", "-fx"]
        );
        // After "--" nothing is translated.
        assert_eq!(tr(&["imapfs", "--", "-o", "x"]).unwrap().len(), 4);
    }

    #[test]
    fn mount_options() {
        let p = config(&["allow_other,noatime".into()], "imapfs:a@b").unwrap();
        assert_eq!(p.config.acl, SessionACL::All);
        let opts = &p.config.mount_options;
        assert!(opts.contains(&MountOption::DefaultPermissions));
        assert!(opts.contains(&MountOption::NoAtime));
        assert!(opts.contains(&MountOption::RO));
        let plain = config(&[], "x").unwrap();
        assert_eq!(plain.config.acl, SessionACL::Owner);
        assert!(!plain.nonempty && !plain.auto_unmount);
        assert!(!plain
            .config
            .mount_options
            .contains(&MountOption::DefaultPermissions));
        // What mount(8) and fstab add is accepted; the mount stays read-only.
        let std = "rw,dev,suid,noexec,nodev,nosuid,_netdev,user,noauto,nofail,x-systemd.automount,comment=x,nonempty,auto_unmount";
        let p = config(&[std.into()], "x").unwrap();
        assert!(p.nonempty && p.auto_unmount);
        let opts = &p.config.mount_options;
        assert!(opts.contains(&MountOption::RO) && !opts.contains(&MountOption::RW));
        assert!(!opts.contains(&MountOption::Dev) && !opts.contains(&MountOption::Suid));
        assert!(opts.contains(&MountOption::NoExec));
        assert!(!opts.iter().any(|o| matches!(o, MountOption::CUSTOM(_))));
        let err = config(&["bogus".into()], "x").unwrap_err();
        assert!(err.contains("unknown option -o bogus"), "{err}");
        assert!(config(&["fsname=x".into()], "x").is_err());
    }
}
