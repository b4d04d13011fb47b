//! The account (CONTRACT §3) and profiles, the principals that create things.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::Meta;

#[derive(Debug, Clone)]
pub struct Account {
    /// `account_id` is the account's own id.
    pub meta: Meta,
    pub billing_email: String,
    pub description: String,
    pub domain: String,
    /// `whsec_…`; stored sealed, readable on GET (CONTRACT §3).
    pub webhook_secret: String,
    pub challenge_token: String,
}

/// A Standard Webhooks signing secret: `whsec_` + base64 of 32 random bytes (CONTRACT §13.3).
pub fn new_webhook_secret() -> String {
    format!("whsec_{}", STANDARD.encode(rand::random::<[u8; 32]>()))
}

pub fn new_challenge_token() -> String {
    crate::crypto::new_token("cdz_ch_")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProfileType {
    User,
    ApiKey,
    System,
}

impl ProfileType {
    pub fn as_str(self) -> &'static str {
        match self {
            ProfileType::User => "PROFILE_TYPE_USER",
            ProfileType::ApiKey => "PROFILE_TYPE_API_KEY",
            ProfileType::System => "PROFILE_TYPE_SYSTEM",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "PROFILE_TYPE_USER" => Some(ProfileType::User),
            "PROFILE_TYPE_API_KEY" => Some(ProfileType::ApiKey),
            "PROFILE_TYPE_SYSTEM" => Some(ProfileType::System),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct Profile {
    pub id: String,
    pub account_id: String,
    pub kind: ProfileType,
    pub name: String,
    pub email: String,
    pub created_at: i64,
}
