//! Property tests for every parser of untrusted text in the engine: tokens,
//! session ids, revocation reasons. None may panic, and whatever they accept
//! must have the documented shape.

use proptest::prelude::*;
use sessiond_engine::{RevokeReason, SessionId, SessionToken, ShardTag};

proptest! {
    #[test]
    fn token_parser_accepts_only_token_shapes(s in "\\PC{0,120}|sds_[A-Za-z0-9_-]{50,60}") {
        if let Some(t) = SessionToken::parse(&s) {
            prop_assert_eq!(t.expose(), s.as_str());
            prop_assert!(s.starts_with("sds_") && s.len() == 58);
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        }
    }

    #[test]
    fn token_parser_survives_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let s = String::from_utf8_lossy(&bytes);
        let _ = SessionToken::parse(&s);
        let _ = SessionId::parse(&s);
        let _ = RevokeReason::parse(&s);
    }

    #[test]
    fn generated_tokens_and_ids_parse_back(user in "\\PC{1,64}") {
        let shard = ShardTag::of_user(&user);
        let t = SessionToken::generate(&shard);
        let parsed = SessionToken::parse(t.expose()).expect("a generated token parses");
        prop_assert_eq!(parsed.digest(), t.digest());
        prop_assert_eq!(&t.digest().shard, &shard);
        let id = SessionId::generate(&shard);
        prop_assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
        prop_assert_eq!(id.shard(), shard);
    }

    #[test]
    fn id_parser_accepts_only_id_shapes(s in "\\PC{0,40}|[A-Za-z0-9_-]{30,36}") {
        if let Some(id) = SessionId::parse(&s) {
            prop_assert_eq!(id.as_str(), s.as_str());
            prop_assert_eq!(s.len(), 33);
        }
    }

    #[test]
    fn reasons_are_label_safe(s in "\\PC{0,80}") {
        if let Some(r) = RevokeReason::parse(&s) {
            prop_assert_eq!(r.as_str(), s.as_str());
            prop_assert!(s.len() <= 64 && !s.is_empty());
            prop_assert!(s.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b)));
        }
    }
}
