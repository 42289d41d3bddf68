//! `global.watch_config` / `serve --watch`: reload when the config file
//! changes.
//!
//! Invariants:
//! - The *directory* holding the file is watched, not the file. An editor
//!   that writes a new file and renames it over the old one, and a
//!   Kubernetes ConfigMap update (a new `..data` symlink renamed over the
//!   old one), replace the inode: a watch on the file itself would go
//!   quiet after the first such write.
//! - Only events naming the config file, `..data`, or the first component
//!   of the file's own symlink target count; the rest of the directory
//!   (log files, editor swap files) never triggers anything.
//! - A change reaches the supervisor only through [`Handle::reload`], the
//!   path that `POST /api/v1/reload` and SIGHUP take: a bad file is
//!   rejected and logged in exactly the same way, and the running config
//!   stays.
//! - Events are debounced (the file must be quiet for [`DEBOUNCE`], at most
//!   [`DEBOUNCE_MAX`] after the first event), and a file whose bytes are
//!   the ones last seen is not reloaded: touching it, or a swap to the same
//!   content, is a no-op.
//! - Whether to watch is decided at start; a reload that changes
//!   `watch_config` takes effect at the next start.

use std::collections::hash_map::DefaultHasher;
use std::ffi::OsString;
use std::hash::{Hash, Hasher};
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use phpeek_core::{Handle, ReloadError};
use tokio::sync::mpsc;

/// How long the file must stay quiet before it is read.
pub const DEBOUNCE: Duration = Duration::from_millis(300);
/// The longest a stream of events can put a reload off.
pub const DEBOUNCE_MAX: Duration = Duration::from_secs(2);

/// Why the watch could not be set up.
#[derive(Debug)]
pub struct WatchError {
    dir: PathBuf,
    source: notify::Error,
}

impl std::fmt::Display for WatchError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot watch {}: {}", self.dir.display(), self.source)
    }
}

impl std::error::Error for WatchError {}

/// Starts watching `config` (inside a tokio runtime); changes are reloaded
/// through `handle` until the runtime ends.
pub fn watch_config_file(config: &Path, handle: Handle) -> Result<(), WatchError> {
    let file = std::path::absolute(config).unwrap_or_else(|_| config.to_path_buf());
    let dir = file
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let names = relevant_names(&file);
    let (tx, rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(ev) => {
                let hit = ev.paths.iter().any(|p| {
                    p.file_name()
                        .is_some_and(|n| names.iter().any(|want| want == n))
                });
                if hit {
                    let _ = tx.send(());
                }
            }
            Err(e) => tracing::warn!("config watch: {e}"),
        })
        .map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
    tracing::info!(
        "watching {} for changes (reloads on write, rename-over and ..data swaps)",
        file.display()
    );
    let seen = digest_of(&file);
    tokio::spawn(follow_changes(watcher, rx, file, seen, handle));
    Ok(())
}

/// The directory entries whose change can change what `file` reads.
fn relevant_names(file: &Path) -> Vec<OsString> {
    let mut names = Vec::new();
    if let Some(n) = file.file_name() {
        names.push(n.to_os_string());
    }
    names.push(OsString::from("..data"));
    // `phpeek-pm.yaml -> current/phpeek-pm.yaml`: swapping `current` counts.
    if let Ok(target) = std::fs::read_link(file) {
        if let Some(Component::Normal(head)) = target.components().next() {
            if target.components().count() > 1 {
                names.push(head.to_os_string());
            }
        }
    }
    names
}

/// What the file holds now: `None` when it cannot be read.
fn digest_of(file: &Path) -> Option<u64> {
    let bytes = std::fs::read(file).ok()?;
    let mut h = DefaultHasher::new();
    bytes.hash(&mut h);
    Some(h.finish())
}

async fn follow_changes(
    watcher: RecommendedWatcher,
    mut events: mpsc::UnboundedReceiver<()>,
    file: PathBuf,
    mut seen: Option<u64>,
    handle: Handle,
) {
    // Owned here: dropping the watcher ends the watch.
    let _watcher = watcher;
    while events.recv().await.is_some() {
        settle(&mut events).await;
        let path = file.clone();
        let (exists, now) = tokio::task::spawn_blocking(move || (path.exists(), digest_of(&path)))
            .await
            .unwrap_or((true, None));
        if !exists {
            tracing::warn!(
                "{} is gone; the running configuration stays until it is back",
                file.display()
            );
            continue;
        }
        if now.is_some() && now == seen {
            continue;
        }
        seen = now;
        tracing::info!("{} changed: reloading the configuration", file.display());
        if let Err(ReloadError::Refused(e)) = handle.reload().await {
            tracing::warn!("reload refused: {e}");
        }
    }
}

/// Waits until no event came for [`DEBOUNCE`], or [`DEBOUNCE_MAX`] passed.
async fn settle(events: &mut mpsc::UnboundedReceiver<()>) {
    let give_up = tokio::time::Instant::now() + DEBOUNCE_MAX;
    loop {
        let quiet_until = (tokio::time::Instant::now() + DEBOUNCE).min(give_up);
        match tokio::time::timeout_at(quiet_until, events.recv()).await {
            Ok(Some(())) if tokio::time::Instant::now() < give_up => continue,
            _ => return,
        }
    }
}
