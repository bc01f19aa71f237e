//! Files and directories only their owner may read: the database (password hashes, sealed
//! secrets, sessions), its `-wal` and `-shm`, and the deploy state directory (mirrors of private
//! repositories, journals). Whichever command creates them first, they are created 0600 and
//! 0700, whatever the umask; ones an older version left readable by others are tightened.

use std::io;
use std::path::Path;

use tracing::warn;

/// Creates `path` as an empty file readable by its owner only, unless it exists; an existing
/// file that others may read is made private. SQLite gives a database's `-wal` and `-shm` files
/// the mode of the database file, so creating the database this way covers them.
pub fn create_private_file(path: &Path) -> io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => tighten(path, 0o600),
        Err(e) => Err(e),
    }
}

/// Creates `path` and its missing parents, each readable by its owner only; an existing `path`
/// that others may read is made private.
pub fn create_private_dir_all(path: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(path)?;
    tighten(path, 0o700)
}

/// Takes group and other permissions away from a file or directory this process owns.
#[cfg(target_os = "linux")]
fn tighten(path: &Path, mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let metadata = std::fs::metadata(path)?;
    // Only what this process owns: a database an administrator shares on purpose through
    // another account is left alone.
    let mine = metadata.uid() == rustix::process::getuid().as_raw();
    if metadata.mode() & 0o077 == 0 || !mine {
        return Ok(());
    }
    warn!(
        path = %path.display(),
        was = format!("{:o}", metadata.mode() & 0o777),
        now = format!("{mode:o}"),
        "made private: it holds secrets and was readable by other users"
    );
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(target_os = "linux"))]
fn tighten(_path: &Path, _mode: u32) -> io::Result<()> {
    Ok(())
}
