//! The task limit of the process's cgroups: `pids.max` (systemd's `TasksMax=`, often some
//! 4,915 tasks for a service), which bounds the threads of every process in the cgroup and
//! its descendants together. Past it, starting a thread fails (`EAGAIN`) whatever the
//! other limits say, so the thread budget ([`super::pool::Budget::from_system`]) counts it.
//!
//! The process's cgroups are read from `/proc/self/cgroup`: the cgroup v2 line (`0::/path`)
//! and, on a hybrid or v1 system, the line of the v1 hierarchy that has the pids controller
//! (`N:pids:/path`: systemd enforces `TasksMax=` there when the controller is bound to v1).
//! Each is found under its mount (`/proc/self/mountinfo`: usually `/sys/fs/cgroup`, or
//! `/sys/fs/cgroup/unified` and `/sys/fs/cgroup/pids`). The cgroup and each of its
//! ancestors up to the mount may have a `pids.max` (`max`: none); each counts what it has
//! (`pids.current`) against it, this process's threads among them, so what is left for
//! this process there is the limit less the tasks of the others. The tightest counts.
//! Anything missing or unreadable (no cgroup v2, no pids controller, a value that is not a
//! number) is no limit from there; what was found is logged at debug level.

use std::path::{Path, PathBuf};

/// A cgroup's task limit as it bounds this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskLimit {
    /// The tasks (threads) this process may have in all: the limit less the tasks of the
    /// others that count against it.
    pub tasks: usize,
    /// Where it comes from, for the log: `pids.max 24 of /sys/fs/cgroup/x (1 task of
    /// others)`.
    pub source: String,
}

/// The tightest task limit of this process's cgroups, given that it has `own_threads`
/// threads now; `None` when none limits it.
pub fn task_limit(own_threads: usize) -> Option<TaskLimit> {
    let read = |path: &Path| std::fs::read_to_string(path).ok();
    let (Some(cgroups), Some(mounts)) = (
        read(Path::new("/proc/self/cgroup")),
        read(Path::new("/proc/self/mountinfo")),
    ) else {
        log::debug!("cgroup: /proc/self/cgroup or /proc/self/mountinfo unreadable: no limit");
        return None;
    };
    tightest(&cgroups, &mounts, own_threads, &read)
}

/// [`task_limit`] of the texts of `/proc/self/cgroup` and `/proc/self/mountinfo`, reading
/// the cgroups' files with `read`.
fn tightest(
    cgroups: &str,
    mountinfo: &str,
    own_threads: usize,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Option<TaskLimit> {
    let dirs = cgroup_dirs(cgroups, mountinfo);
    if dirs.is_empty() {
        log::debug!("cgroup: no cgroup v2 and no v1 pids hierarchy found: no limit");
    }
    let mut best: Option<TaskLimit> = None;
    for (dir, top) in dirs {
        let mut limited = false;
        // The cgroup, then each ancestor up to the hierarchy's root (which has no limit).
        for level in dir.ancestors().take_while(|d| d.starts_with(&top)) {
            let Some(limit) = level_limit(level, own_threads, read) else {
                continue;
            };
            limited = true;
            if best.as_ref().is_none_or(|b| limit.tasks < b.tasks) {
                best = Some(limit);
            }
        }
        if !limited {
            log::debug!(
                "cgroup: no pids.max limits {} (up to {})",
                dir.display(),
                top.display()
            );
        }
    }
    best
}

/// The task limit of the cgroup `dir` as it bounds this process, if it has one.
fn level_limit(
    dir: &Path,
    own_threads: usize,
    read: &dyn Fn(&Path) -> Option<String>,
) -> Option<TaskLimit> {
    let shown = dir.display();
    let max = read(&dir.join("pids.max"))?;
    let max = max.trim();
    if max == "max" {
        log::debug!("cgroup: {shown}: pids.max is max (no limit)");
        return None;
    }
    let Ok(max) = max.parse::<usize>() else {
        log::debug!("cgroup: {shown}: pids.max {max:?} is not a number: no limit from it");
        return None;
    };
    let current = read(&dir.join("pids.current")).and_then(|c| c.trim().parse::<usize>().ok());
    let others = match current {
        Some(current) => current.saturating_sub(own_threads),
        None => {
            log::debug!("cgroup: {shown}: pids.current unreadable: counted as this process's");
            0
        }
    };
    let tasks = max.saturating_sub(others);
    let plural = if others == 1 { "" } else { "s" };
    let source = format!("pids.max {max} of {shown} ({others} task{plural} of others)");
    log::debug!("cgroup: {source}: {tasks} tasks for this process");
    Some(TaskLimit { tasks, source })
}

/// The directories of this process's cgroup v2 and of its v1 pids cgroup, each with the
/// root of its mount (the highest ancestor that may be read).
fn cgroup_dirs(cgroups: &str, mountinfo: &str) -> Vec<(PathBuf, PathBuf)> {
    let mut dirs = Vec::new();
    for line in cgroups.lines() {
        let mut fields = line.splitn(3, ':');
        let (Some(id), Some(controllers), Some(path)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let v2 = id == "0" && controllers.is_empty();
        let v1_pids = controllers.split(',').any(|c| c == "pids");
        if !v2 && !v1_pids {
            continue;
        }
        let found = mountinfo.lines().find_map(|m| {
            let (root, point) = cgroup_mount(m, v2)?;
            // The mount shows the hierarchy from `root` down.
            let below = Path::new(path).strip_prefix(&root).ok()?;
            Some((point.join(below), point))
        });
        match found {
            Some(dir) => dirs.push(dir),
            None => log::debug!("cgroup: {line:?}: no mount shows it"),
        }
    }
    dirs
}

/// The root (in the hierarchy) and mount point of a line of `/proc/self/mountinfo`, if it
/// mounts cgroup v2 (`v2`), or else a cgroup v1 hierarchy with the pids controller.
fn cgroup_mount(line: &str, v2: bool) -> Option<(PathBuf, PathBuf)> {
    let (left, right) = line.split_once(" - ")?;
    let mut left = left.split(' ').skip(3);
    let (root, point) = (left.next()?, left.next()?);
    let mut right = right.split(' ');
    let (fstype, options) = (right.next()?, right.nth(1)?);
    let fits = if v2 {
        fstype == "cgroup2"
    } else {
        fstype == "cgroup" && options.split(',').any(|o| o == "pids")
    };
    fits.then(|| (unescape(root), unescape(point)))
}

/// A path field of mountinfo, where the kernel writes a space, tab, newline and backslash
/// as `\` and three octal digits (`\040`).
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        // Three octal digits after a backslash that make a byte.
        let escaped = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)))
            .and_then(|d| {
                u8::try_from(d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'))).ok()
            });
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    PathBuf::from(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const UNIFIED: &str = "35 24 0:30 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";

    /// [`tightest`] over files given as (path, text).
    fn limit(cgroups: &str, mounts: &str, own: usize, files: &[(&str, &str)]) -> Option<TaskLimit> {
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        tightest(cgroups, mounts, own, &|p: &Path| files.get(p).cloned())
    }

    #[test]
    fn a_v2_service_gets_its_limit_less_the_others_tasks() {
        let dir = "/sys/fs/cgroup/system.slice/xscpd.service";
        let l = limit(
            "0::/system.slice/xscpd.service\n",
            UNIFIED,
            3,
            &[
                (&format!("{dir}/pids.max"), "4915\n"),
                (&format!("{dir}/pids.current"), "5\n"),
                ("/sys/fs/cgroup/system.slice/pids.max", "max\n"),
                ("/sys/fs/cgroup/system.slice/pids.current", "200\n"),
            ],
        );
        assert_eq!(
            l,
            Some(TaskLimit {
                tasks: 4913,
                source: format!("pids.max 4915 of {dir} (2 tasks of others)"),
            })
        );
    }

    #[test]
    fn the_tightest_ancestor_counts() {
        let l = limit(
            "0::/a/b\n",
            UNIFIED,
            1,
            &[
                ("/sys/fs/cgroup/a/b/pids.max", "1000"),
                ("/sys/fs/cgroup/a/b/pids.current", "1"),
                ("/sys/fs/cgroup/a/pids.max", "100"),
                ("/sys/fs/cgroup/a/pids.current", "61"),
            ],
        );
        assert_eq!(l.map(|l| l.tasks), Some(40));
    }

    #[test]
    fn a_hybrid_system_counts_the_v1_pids_hierarchy() {
        let cgroups = "8:pids:/x\n4:memory:/m\n0::/\n";
        let files = [
            ("/sys/fs/cgroup/pids/x/pids.max", "24\n"),
            ("/sys/fs/cgroup/pids/x/pids.current", "1\n"),
            // Not a pids hierarchy: never read.
            ("/sys/fs/cgroup/memory/m/pids.max", "2\n"),
        ];
        let l = limit(cgroups, HYBRID, 1, &files);
        assert_eq!(l.map(|l| l.tasks), Some(24));
    }

    #[test]
    fn missing_unreadable_or_unlimited_values_are_no_limit() {
        let no =
            |cgroups: &str, mounts: &str, files: &[(&str, &str)]| limit(cgroups, mounts, 1, files);
        // No pids files (no pids controller), "max", not a number, no cgroup line, no mount.
        assert_eq!(no("0::/a\n", UNIFIED, &[]), None);
        assert_eq!(
            no(
                "0::/a\n",
                UNIFIED,
                &[("/sys/fs/cgroup/a/pids.max", "max\n")]
            ),
            None
        );
        assert_eq!(
            no("0::/a\n", UNIFIED, &[("/sys/fs/cgroup/a/pids.max", "lots")]),
            None
        );
        assert_eq!(no("", UNIFIED, &[("/sys/fs/cgroup/pids.max", "5")]), None);
        assert_eq!(
            no("0::/a\n", HYBRID.replace("cgroup2", "x").as_str(), &[]),
            None
        );
        assert_eq!(no("garbage\n4:memory:/m\n", HYBRID, &[]), None);
        // A limit whose current count is unreadable is the process's alone.
        let l = no("0::/a\n", UNIFIED, &[("/sys/fs/cgroup/a/pids.max", "30")]);
        assert_eq!(l.map(|l| l.tasks), Some(30));
    }

    /// The tasks left to this process (2 tasks of its own) when the cgroup `svc` mounted
    /// at `point` allows 10 and counts 4, as [`tightest`] finds them from `cgroup`.
    fn svc_tasks(cgroup: &str, mounts: &str, point: &str) -> Option<usize> {
        let max = format!("{point}/svc/pids.max");
        let current = format!("{point}/svc/pids.current");
        let files = [(max.as_str(), "10"), (current.as_str(), "4")];
        limit(cgroup, mounts, 2, &files).map(|l| l.tasks)
    }

    #[test]
    fn a_mount_of_part_of_the_hierarchy_shows_the_path_below_its_root() {
        let mounts = "50 40 0:30 /ct /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(svc_tasks("0::/ct/svc\n", mounts, "/sys/fs/cgroup"), Some(8));
        // A cgroup outside what the mount shows cannot be read.
        assert_eq!(svc_tasks("0::/other\n", mounts, "/sys/fs/cgroup"), None);
    }

    /// mountinfo writes a space, tab, newline or backslash in a path as an octal escape
    /// (`\040`); /proc/self/cgroup writes the path as it is.
    #[test]
    fn escaped_characters_of_a_mount_are_decoded() {
        let mounts = "50 40 0:30 /a\\134b\\011 /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            svc_tasks("0::/a\\b\t/svc\n", mounts, "/sys/fs/my cgroup"),
            Some(8)
        );
        // Not an escape: kept as it is.
        assert_eq!(unescape("/a\\777\\04\\"), PathBuf::from("/a\\777\\04\\"));
    }
}
