//! The SSE2 path, which x86-64 CPUs without AVX2 take: the same tags as the RFC and as the
//! AVX2 path's reference. Its own process (an integration test), since the path is chosen once
//! per process before the first hash.
#![allow(clippy::unwrap_used)]

use keyward_argon2::{Inputs, Memory, Variant, hash_raw, implementation, use_sse2_path};

#[test]
fn the_sse2_path_gives_the_same_tags() {
    assert!(
        use_sse2_path(),
        "no hash may run in this process before the switch"
    );
    if cfg!(target_arch = "x86_64") {
        assert_eq!(implementation(), "sse2");
    }
    // RFC 9106 §5.3 (Argon2id), and a password-hashing shape (no secret, no data).
    let mut out = [0u8; 32];
    let inputs = Inputs {
        variant: Variant::Id,
        version: 0x13,
        m_cost: 32,
        t_cost: 3,
        lanes: 4,
        password: &[1; 32],
        salt: &[2; 16],
        secret: &[3; 8],
        ad: &[4; 12],
    };
    hash_raw(&inputs, &mut out, &mut Memory::new()).unwrap();
    let hex: String = out.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "0d640df58d78766c08c037a34a8b53c9d01ef0452d75b65eb52520e96b01e659"
    );
    let mut memory = Memory::new();
    for (m, t, p) in [(64, 1, 1), (1024, 2, 1), (256, 3, 2)] {
        let inputs = Inputs {
            variant: Variant::Id,
            version: 0x13,
            m_cost: m,
            t_cost: t,
            lanes: p,
            password: b"Passw0rd!one",
            salt: b"0123456789abcdef",
            secret: &[],
            ad: &[],
        };
        let mut ours = [0u8; 32];
        hash_raw(&inputs, &mut ours, &mut memory).unwrap();
        let params = argon2::Params::new(m, t, p, Some(32)).unwrap();
        let mut theirs = [0u8; 32];
        argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
            .hash_password_into(b"Passw0rd!one", b"0123456789abcdef", &mut theirs)
            .unwrap();
        assert_eq!(ours, theirs, "m={m} t={t} p={p}");
    }
}
