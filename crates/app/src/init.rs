//! `sekisho init`: a new data directory with the documented default configuration, a random database
//! key (mode 0600), the TLS material, the encrypted store and the first maintainer account.

use crate::config::DEFAULT_TOML;
use sekisho_admin::system_user_problems;
use sekisho_core::{Role, UserId};
use sekisho_registry::{crypto, pki};
use sekisho_store::prelude::*;
use sekisho_store::users::UserRow;
use sekisho_store::{DbKey, StoreOptions, now_ms};
use std::path::{Path, PathBuf};

/// The file a generated first password is written to when it must not be printed.
pub const INITIAL_PASSWORD_FILE: &str = "initial-password";

/// What `init` did.
pub struct InitReport {
    /// `false` when the directory was already initialised (nothing was changed).
    pub created: bool,
    pub admin_user: String,
    /// The generated password, when none was given (shown once).
    pub generated_password: Option<String>,
    /// Where the generated password was written instead of being shown (mode 0600).
    pub password_file: Option<PathBuf>,
    /// The names the device and admin certificates carry.
    pub names: Vec<String>,
}

/// Initialises `data_dir` unless `sekisho.toml` already exists there. The server certificates carry
/// localhost, 127.0.0.1, ::1 and `extra_names`. With `password_to_file`, a generated password is
/// written to [`INITIAL_PASSWORD_FILE`] (0600) in `data_dir` rather than returned for showing.
pub async fn init(
    data_dir: &Path,
    admin_user: &str,
    admin_password: Option<String>,
    extra_names: &[String],
    password_to_file: bool,
) -> anyhow::Result<InitReport> {
    let config_path = data_dir.join("sekisho.toml");
    if config_path.exists() {
        return Ok(InitReport {
            created: false,
            admin_user: admin_user.to_owned(),
            generated_password: None,
            password_file: None,
            names: Vec::new(),
        });
    }
    let generated = admin_password.is_none();
    let password = admin_password.unwrap_or_else(crypto::new_secret);
    let problems = system_user_problems(admin_user, &password);
    if !problems.is_empty() {
        anyhow::bail!("the first maintainer account: {}", problems.join("; "));
    }
    // Checked before anything is written, so a bad --name leaves no half-made directory.
    let names = pki::server_names(extra_names)?;
    std::fs::create_dir_all(data_dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))?;
    }
    let key = DbKey::from_bytes(crypto::random());
    pki::write_file(
        &data_dir.join("db.key"),
        format!("{}\n", key.to_hex()).as_bytes(),
        true,
    )?;
    pki::init_tls(&data_dir.join("tls"), extra_names)?;
    // The update manifests' signing key (its public half goes to devices).
    sekisho_update::keyring::Keys::load(
        &data_dir.join("update.key"),
        &data_dir.join("update-previous.pub"),
    )?;
    let store =
        sekisho_store::open(&data_dir.join("sekisho.db"), &key, StoreOptions::default()).await?;
    let pw = password.clone();
    let password_hash = tokio::task::spawn_blocking(move || crypto::hash_password(&pw)).await?;
    store
        .insert_user(&UserRow {
            id: UserId::from_random(crypto::random()),
            username: admin_user.to_owned(),
            password_hash,
            role: Role::Maintainer,
            fields: Vec::new(),
            created_at: now_ms(),
            mfa_enabled: false,
        })
        .await?;
    store.close().await;
    let password_file =
        (generated && password_to_file).then(|| data_dir.join(INITIAL_PASSWORD_FILE));
    if let Some(f) = &password_file {
        pki::write_file(f, format!("{password}\n").as_bytes(), true)?;
    }
    // Written last: its presence means the directory is complete.
    pki::write_file(&config_path, DEFAULT_TOML.as_bytes(), false)?;
    Ok(InitReport {
        created: true,
        admin_user: admin_user.to_owned(),
        generated_password: (generated && password_file.is_none()).then_some(password),
        password_file,
        names,
    })
}

/// Sets the password of an existing user (`sekisho passwd`), ending its sessions.
pub async fn set_password(
    config: &crate::config::Config,
    key: &DbKey,
    user: &str,
    password: &str,
) -> anyhow::Result<()> {
    let problems = system_user_problems(user, password);
    if !problems.is_empty() {
        anyhow::bail!("{}", problems.join("; "));
    }
    let store = sekisho_store::open(&config.store.path, key, StoreOptions::default()).await?;
    let pw = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || crypto::hash_password(&pw)).await?;
    let changed = store.set_password(user, &hash).await?;
    store.close().await;
    if !changed {
        anyhow::bail!("no user named {user}");
    }
    Ok(())
}
