//! The demo's user directory: a few users whose passwords are stored only as
//! argon2id hashes (PHC strings), checked in constant time.

use argon2::{Argon2, PasswordHash, PasswordVerifier};

/// One demo account.
pub struct DemoUser {
    /// Login name, also the session's user id.
    pub name: &'static str,
    /// Role the session gets.
    pub role: Option<&'static str>,
    /// The password shown on the login page (this is a demo).
    pub demo_password: &'static str,
    phc: &'static str,
}

/// The accounts. Their hashes were made with argon2id (m=19456 KiB, t=2, p=1).
pub const USERS: [DemoUser; 2] = [
    DemoUser {
        name: "alice",
        role: Some("admin"),
        demo_password: "wonderland",
        phc: "$argon2id$v=19$m=19456,t=2,p=1$gXpYtgoDoN3l5jALjPHudw$h2C3kXet62GULttEzqMDLYoulX9dz8mwGKWMGsrJUOE",
    },
    DemoUser {
        name: "bob",
        role: None,
        demo_password: "builder",
        phc: "$argon2id$v=19$m=19456,t=2,p=1$Fq2nyBqgJVidmOM/mHUgXg$imVSCoBMY85KIOjIEUQETNbBLkCqa6wY4QxgqWVDA4o",
    },
];

/// Checked against for unknown names, so they take as long as known ones.
const DUMMY_PHC: &str = "$argon2id$v=19$m=19456,t=2,p=1$MuyfxZGwWXc6M8XFVV8oNg$xDfDnyau45HPTZ7E6SR7tLpSPyG8EyTW5aiVkTOYmDY";

fn verify(phc: &str, password: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// The user with this name and password, if both match. Slow on purpose
/// (argon2): call it off the async executor.
pub fn authenticate(name: &str, password: &str) -> Option<&'static DemoUser> {
    match USERS.iter().find(|u| u.name == name) {
        Some(user) => verify(user.phc, password).then_some(user),
        None => {
            let _ = verify(DUMMY_PHC, password);
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_password_passes() {
        assert_eq!(
            authenticate("alice", "wonderland").map(|u| u.name),
            Some("alice")
        );
        assert_eq!(authenticate("bob", "builder").map(|u| u.role), Some(None));
        assert!(authenticate("alice", "builder").is_none());
        assert!(authenticate("alice", "").is_none());
        assert!(authenticate("mallory", "wonderland").is_none());
    }
}
