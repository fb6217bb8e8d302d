//! `polyledger keygen` and `polyledger key split | recover`: keys at rest (`sdk::vault`).
//!
//! A password comes from `--password-file FILE` (first line) or, without it, the
//! environment variable `POLYLEDGER_KEY_PASSWORD`; never from a flag's value (it would
//! sit in the shell history and the process list).

use std::path::{Path, PathBuf};

use clap::Subcommand;
use crypto_parallel::PrivateKey;
use engine::model::Address;
use sdk::vault::{self, Password, VaultError};

use crate::{Failure, algorithm_by_name, hex_string, invalid, runtime};

/// Reads a private key file, opening it with the password when it is encrypted.
pub fn read_key(path: &Path, password_file: Option<&Path>) -> Result<PrivateKey, VaultError> {
    let password = Password::from_file_or_env(password_file)?;
    vault::read_key(path, password.as_ref())
}

fn password_for_writing(password_file: Option<&Path>) -> Result<Password, Failure> {
    Password::from_file_or_env(password_file).map_err(|e| invalid(e.to_string()))?.ok_or_else(
        || {
            invalid(format!(
                "--encrypt needs a password: --password-file FILE or {}",
                vault::PASSWORD_ENV
            ))
        },
    )
}

fn write_secret(path: &Path, text: &str) -> Result<(), Failure> {
    sdk::keys::write_secret_file(path, text).map_err(|error| match &error {
        sdk::keys::KeyError::Io { source, .. }
            if source.kind() == std::io::ErrorKind::AlreadyExists =>
        {
            invalid(format!("{} exists; not overwriting a key", path.display()))
        }
        _ => runtime(error.to_string()),
    })
}

/// Writes `key` to `out`, encrypted when `encrypt`.
fn write_key(
    out: &Path,
    key: &PrivateKey,
    encrypt: bool,
    password_file: Option<&Path>,
) -> Result<(), Failure> {
    if encrypt {
        let password = password_for_writing(password_file)?;
        let sealed = vault::seal(key, &password).map_err(|e| invalid(e.to_string()))?;
        write_secret(out, &sealed)
    } else {
        let pem = key.to_pem().map_err(|e| runtime(e.to_string()))?;
        write_secret(out, &pem)
    }
}

/// `polyledger keygen`.
pub fn keygen(
    out: &Path,
    algorithm: &str,
    pub_out: Option<&Path>,
    encrypt: bool,
    password_file: Option<&Path>,
) -> Result<(), Failure> {
    let algorithm = algorithm_by_name(algorithm).ok_or_else(|| {
        invalid(format!("unknown algorithm `{algorithm}` (sm2, ed25519, ecdsa-p256)"))
    })?;
    if pub_out == Some(out) {
        return Err(invalid("--pub-out must differ from --out"));
    }
    let key = sdk::keys::generate(algorithm);
    write_key(out, &key, encrypt, password_file)?;
    let public = key.public_key();
    if let Some(path) = pub_out {
        sdk::keys::write_public_key(path, &public).map_err(|e| runtime(e.to_string()))?;
    }
    println!("public key: {}", public.to_base58());
    println!(
        "address (sm3): {}",
        hex_string(&Address::of(crypto_parallel::HashAlgorithm::Sm3, &public).0)
    );
    Ok(())
}

/// `polyledger key …`.
#[derive(Subcommand, Debug)]
pub enum KeyCommand {
    /// Split a private key into N share files of which any M recover it (Shamir).
    Split {
        /// The key file (plain or encrypted).
        #[arg(long)]
        key: PathBuf,
        /// Its password file, when encrypted (else POLYLEDGER_KEY_PASSWORD).
        #[arg(long)]
        password_file: Option<PathBuf>,
        /// Shares needed to recover (M, at least 2).
        #[arg(long)]
        threshold: u8,
        /// Shares written (N, at least M, at most 255).
        #[arg(long)]
        shares: u8,
        /// Directory for `share-1.pem` … `share-N.pem` (created; files are mode 0600).
        #[arg(long)]
        out_dir: PathBuf,
    },
    /// Recover a key from share files and write it (plain or encrypted).
    Recover {
        /// A share file; repeat for each share (at least the threshold).
        #[arg(long = "share", required = true)]
        shares: Vec<PathBuf>,
        /// Where to write the key; refuses to overwrite.
        #[arg(long)]
        out: PathBuf,
        /// Encrypt the recovered key (password from --password-file or the environment).
        #[arg(long)]
        encrypt: bool,
        /// Password file for --encrypt.
        #[arg(long)]
        password_file: Option<PathBuf>,
    },
}

/// Runs `polyledger key …`.
pub fn run(command: KeyCommand) -> Result<(), Failure> {
    match command {
        KeyCommand::Split { key, password_file, threshold, shares, out_dir } => {
            let key = read_key(&key, password_file.as_deref())
                .map_err(|e| invalid(format!("--key: {e}")))?;
            let texts =
                vault::split(&key, threshold, shares).map_err(|e| invalid(e.to_string()))?;
            std::fs::create_dir_all(&out_dir)
                .map_err(|e| runtime(format!("{}: {e}", out_dir.display())))?;
            for (i, text) in texts.iter().enumerate() {
                write_secret(&out_dir.join(format!("share-{}.pem", i + 1)), text)?;
            }
            println!(
                "{shares} shares of {} in {}; any {threshold} recover the key",
                key.public_key().to_base58(),
                out_dir.display()
            );
            Ok(())
        }
        KeyCommand::Recover { shares, out, encrypt, password_file } => {
            let texts = shares
                .iter()
                .map(|path| {
                    std::fs::read_to_string(path)
                        .map(zeroize::Zeroizing::new)
                        .map_err(|e| invalid(format!("--share {}: {e}", path.display())))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let refs: Vec<&str> = texts.iter().map(|t| t.as_str()).collect();
            let key = vault::recover(&refs).map_err(|e| invalid(e.to_string()))?;
            write_key(&out, &key, encrypt, password_file.as_deref())?;
            println!("recovered {} into {}", key.public_key().to_base58(), out.display());
            Ok(())
        }
    }
}

/// `polyledger token`: 32 random bytes, hex, written to `out` (0600, never overwritten);
/// prints the config entry with the token's SHA-256.
pub fn token(out: &Path, name: &str, user: Option<&str>) -> Result<(), Failure> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
    if name.is_empty() || name.len() > 64 || !name.chars().all(plain) {
        return Err(invalid("--name: 1 to 64 characters of A-Z a-z 0-9 . _ -"));
    }
    if let Some(user) = user {
        crypto_parallel::PublicKey::from_base58(user)
            .map_err(|e| invalid(format!("--user: not a base58 public key: {e}")))?;
    }
    let token = hex::encode(rand::random::<[u8; 32]>());
    sdk::keys::write_secret_file(out, &format!("{token}\n"))
        .map_err(|e| invalid(format!("--out: {e}")))?;
    println!("# token in {} (send it as `Authorization: Bearer <token>`)", out.display());
    println!("[[gateway.tokens]]");
    println!("name = \"{name}\"");
    println!("sha256 = \"{}\"", gateway::auth::token_hash_hex(&token));
    if let Some(user) = user {
        println!("user = \"{user}\"");
    }
    Ok(())
}
