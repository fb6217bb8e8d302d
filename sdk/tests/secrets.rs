//! Secrets print as nothing: a password, a private key, a client's bearer token.
#![cfg(feature = "client")]

use crypto_parallel::{PrivateKey, SignatureAlgorithm};
use sdk::vault::Password;
use sdk::{Client, ClientOptions};

#[test]
fn debug_output_never_shows_a_secret() {
    let password = Password::new("correct horse battery staple");
    assert!(!format!("{password:?}").contains("horse"));

    let key = PrivateKey::generate(SignatureAlgorithm::Sm2);
    let pem = key.to_pem().unwrap();
    let body: String = pem.lines().nth(1).unwrap().to_owned();
    assert!(!format!("{key:?}").contains(&body[..20]));

    let token = "a3f1c0ffee5ecret".repeat(4);
    let options = ClientOptions { token: Some(token.clone()), ca_pem: None };
    assert!(!format!("{options:?}").contains(&token));
    let client = Client::with_options("https://gw.example:8443", &options).unwrap();
    assert!(!format!("{client:?}").contains(&token));
}
