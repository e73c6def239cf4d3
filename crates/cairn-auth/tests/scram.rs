use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use cairn_auth::scram::{MAX_ITERATIONS, MAX_MESSAGE_BYTES};
use cairn_auth::{ScramClient, ScramCredential, ScramError, ScramMechanism, ScramServer};

const RFC_SALT: &str = "W22ZaJ0SNY7soEsUEjb6gQ==";

fn rfc_credential() -> ScramCredential {
    let salt = B64.decode(RFC_SALT).unwrap();
    ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096)
}

/// RFC 7677 section 3, both sides, byte for byte.
#[test]
fn rfc7677_test_vector() {
    let client_first = b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO";
    let server_first =
        "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    let client_final = "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    let server_final = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    let mut client = ScramClient::with_nonce(
        ScramMechanism::Sha256,
        "user",
        "pencil",
        "rOprNGfwEbeRWgbNEkqO",
    );
    assert_eq!(client.first(), client_first.to_vec());

    let mut server =
        ScramServer::with_nonce(ScramMechanism::Sha256, "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0");
    let mut asked = None;
    let sf = server
        .client_first(client_first, |u| {
            asked = Some(u.to_owned());
            Some(rfc_credential())
        })
        .unwrap();
    assert_eq!(asked.as_deref(), Some("user"));
    assert_eq!(String::from_utf8(sf.clone()).unwrap(), server_first);

    let cf = client.fin(&sf).unwrap();
    assert_eq!(String::from_utf8(cf.clone()).unwrap(), client_final);

    let (sfin, user) = server.client_final(&cf).unwrap();
    assert_eq!(user, "user");
    assert_eq!(String::from_utf8(sfin.clone()).unwrap(), server_final);
    client.verify(&sfin).unwrap();
}

fn round_trip(
    mech: ScramMechanism,
    user: &str,
    stored_pw: &str,
    client_pw: &str,
) -> Result<String, ScramError> {
    let cred = ScramCredential::from_password(mech, stored_pw, &cairn_auth::random_salt(), 4096);
    let mut client = ScramClient::new(mech, user, client_pw);
    let mut server = ScramServer::new(mech);
    let sf = server.client_first(&client.first(), |u| (u == user).then(|| cred.clone()))?;
    let cf = client.fin(&sf)?;
    let (sfin, who) = server.client_final(&cf)?;
    client.verify(&sfin)?;
    Ok(who)
}

#[test]
fn round_trip_both_mechanisms() {
    for mech in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        assert_eq!(
            round_trip(mech, "alice", "s3cret", "s3cret").unwrap(),
            "alice"
        );
        // Names with the two escaped characters survive saslname encoding.
        assert_eq!(round_trip(mech, "a,b=c", "pw", "pw").unwrap(), "a,b=c");
    }
}

#[test]
fn wrong_password_and_unknown_user_fail_with_the_same_text() {
    for mech in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        let wrong = round_trip(mech, "alice", "right", "wrong").unwrap_err();
        assert!(
            matches!(wrong, ScramError::InvalidCredentials(_)),
            "{wrong:?}"
        );

        // Unknown user: the first step still answers (with a decoy salt), the proof fails.
        let mut client = ScramClient::new(mech, "nobody", "x");
        let mut server = ScramServer::new(mech);
        let sf = server.client_first(&client.first(), |_| None).unwrap();
        let cf = client.fin(&sf).unwrap();
        let unknown = server.client_final(&cf).unwrap_err();
        assert_eq!(wrong.to_string(), unknown.to_string());
        assert_eq!(
            unknown.to_string(),
            format!(
                "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
                mech.name()
            )
        );
    }
}

#[test]
fn decoy_salt_is_stable_per_name() {
    let salt_of = |user: &str| {
        let mut s = ScramServer::new(ScramMechanism::Sha256);
        let sf = s
            .client_first(format!("n,,n={user},r=abc").as_bytes(), |_| None)
            .unwrap();
        let sf = String::from_utf8(sf).unwrap();
        sf.split(',').nth(1).unwrap().to_owned()
    };
    assert_eq!(salt_of("ghost"), salt_of("ghost"));
    assert_ne!(salt_of("ghost"), salt_of("phantom"));
}

#[test]
fn credential_of_another_mechanism_is_not_used() {
    let cred = ScramCredential::from_password(ScramMechanism::Sha512, "pw", b"salt", 4096);
    let mut client = ScramClient::new(ScramMechanism::Sha256, "alice", "pw");
    let mut server = ScramServer::new(ScramMechanism::Sha256);
    let sf = server
        .client_first(&client.first(), |_| Some(cred))
        .unwrap();
    let cf = client.fin(&sf).unwrap();
    assert!(matches!(
        server.client_final(&cf),
        Err(ScramError::InvalidCredentials(_))
    ));
}

#[test]
fn authzid_must_equal_the_user() {
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    let e = s
        .client_first(b"n,a=bob,n=alice,r=abc", |_| Some(rfc_credential()))
        .unwrap_err();
    assert!(matches!(e, ScramError::AuthzidMismatch));
    assert!(e
        .client_message(ScramMechanism::Sha256)
        .contains("authorization id"));

    // Same authzid as the user: accepted, and c= may carry that header.
    let salt = b"salty";
    let cred = ScramCredential::from_password(ScramMechanism::Sha256, "pw", salt, 4096);
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    let sf = s
        .client_first(b"n,a=alice,n=alice,r=abc", |_| Some(cred.clone()))
        .unwrap();
    let mut c = ScramClient::with_nonce(ScramMechanism::Sha256, "alice", "pw", "abc");
    c.first();
    // The test client always sends c=biws.
    let cf = String::from_utf8(c.fin(&sf).unwrap()).unwrap();
    assert!(cf.starts_with("c=biws,"));
    let fin = s.client_final(cf.as_bytes());
    // biws is accepted even though the header named an authzid (Kafka does not check it).
    assert!(fin.is_ok(), "{fin:?}");
}

#[test]
fn channel_binding_must_match_the_header() {
    let mut c = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "nonce");
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    let sf = s
        .client_first(&c.first(), |_| Some(rfc_credential()))
        .unwrap();
    let cf = String::from_utf8(c.fin(&sf).unwrap()).unwrap();
    let forged = cf.replacen("c=biws", &format!("c={}", B64.encode("y,,")), 1);
    assert!(matches!(
        s.client_final(forged.as_bytes()),
        Err(ScramError::Malformed(_))
    ));
}

#[test]
fn refusals_of_the_first_message() {
    type Check = fn(&ScramError) -> bool;
    let cases: &[(&[u8], Check)] = &[
        (b"p=tls-unique,,n=user,r=abc", |e| {
            matches!(e, ScramError::ChannelBinding)
        }),
        (b"n,,n=user,r=abc,tokenauth=true", |e| {
            matches!(e, ScramError::UnsupportedExtension(_))
        }),
        (b"n,,m=ext,n=user,r=abc", |e| {
            matches!(e, ScramError::UnsupportedExtension(_))
        }),
        (b"n,,n=us=er,r=abc", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        (b"n,,n=,r=abc", |e| matches!(e, ScramError::Malformed(_))),
        (b"n,,n=user,r=", |e| matches!(e, ScramError::Malformed(_))),
        (b"n,,n=user", |e| matches!(e, ScramError::Malformed(_))),
        (b"x,,n=user,r=abc", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        (b"n,b=x,n=user,r=abc", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        (b"n,,n=user,r=a\x01b", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        (b"n,,n=\xff,r=abc", |e| {
            matches!(e, ScramError::Malformed(_))
        }),
        (b"", |e| matches!(e, ScramError::Malformed(_))),
    ];
    for (msg, ok) in cases {
        let mut s = ScramServer::new(ScramMechanism::Sha256);
        let e = s.client_first(msg, |_| Some(rfc_credential())).unwrap_err();
        assert!(ok(&e), "{:?} gave {e:?}", String::from_utf8_lossy(msg));
        // Every failure ends the exchange.
        assert!(matches!(
            s.client_final(b"c=biws,r=x,p=AAAA"),
            Err(ScramError::OutOfOrder(_))
        ));
    }
    // An unknown extension is ignored, as Kafka does.
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    assert!(s
        .client_first(b"n,,n=user,r=abc,foo=bar", |_| Some(rfc_credential()))
        .is_ok());
}

#[test]
fn nonce_mismatch_and_out_of_order() {
    let mut c = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "nonce");
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    // Final before first.
    assert!(matches!(
        s.client_final(b"c=biws,r=x,p=AAAA"),
        Err(ScramError::OutOfOrder(_))
    ));
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    let sf = s
        .client_first(&c.first(), |_| Some(rfc_credential()))
        .unwrap();
    // A second first message.
    let mut again = ScramServer::new(ScramMechanism::Sha256);
    let _ = again.client_first(b"n,,n=user,r=abc", |_| None).unwrap();
    assert!(matches!(
        again.client_first(b"n,,n=user,r=abc", |_| None),
        Err(ScramError::OutOfOrder(_))
    ));
    let cf = String::from_utf8(c.fin(&sf).unwrap()).unwrap();
    let r = cf.split(',').nth(1).unwrap().to_owned();
    let tampered = cf.replacen(&r, &format!("{r}X"), 1);
    assert!(matches!(
        s.client_final(tampered.as_bytes()),
        Err(ScramError::NonceMismatch)
    ));
    // Failed: the genuine message no longer helps.
    assert!(matches!(
        s.client_final(cf.as_bytes()),
        Err(ScramError::OutOfOrder(_))
    ));
}

#[test]
fn tampered_proof_and_server_signature_are_refused() {
    let mut c = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "n1");
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    let sf = s
        .client_first(&c.first(), |_| Some(rfc_credential()))
        .unwrap();
    let cf = String::from_utf8(c.fin(&sf).unwrap()).unwrap();
    let (head, proof) = cf.rsplit_once(",p=").unwrap();
    let mut p = B64.decode(proof).unwrap();
    p[0] ^= 1;
    let bad = format!("{head},p={}", B64.encode(&p));
    assert!(matches!(
        s.client_final(bad.as_bytes()),
        Err(ScramError::InvalidCredentials(_))
    ));

    // Client side: a server that does not know the credential cannot forge v=.
    let mut c = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "n2");
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    let sf = s
        .client_first(&c.first(), |_| Some(rfc_credential()))
        .unwrap();
    c.fin(&sf).unwrap();
    let forged = format!("v={}", B64.encode([0u8; 32]));
    assert!(matches!(
        c.verify(forged.as_bytes()),
        Err(ScramError::BadServerSignature)
    ));
}

#[test]
fn oversized_messages_are_refused() {
    let big = format!("n,,n=user,r={}", "a".repeat(MAX_MESSAGE_BYTES));
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    assert!(matches!(
        s.client_first(big.as_bytes(), |_| Some(rfc_credential())),
        Err(ScramError::TooLarge(_))
    ));
    // Just under the cap is fine.
    let ok = format!("n,,n=user,r={}", "a".repeat(MAX_MESSAGE_BYTES - 12));
    assert_eq!(ok.len(), MAX_MESSAGE_BYTES);
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    assert!(s
        .client_first(ok.as_bytes(), |_| Some(rfc_credential()))
        .is_ok());
}

#[test]
fn client_refuses_hostile_iteration_counts() {
    for i in [0, 4095, MAX_ITERATIONS + 1, i32::MAX] {
        let mut c = ScramClient::with_nonce(ScramMechanism::Sha256, "u", "p", "abc");
        c.first();
        let sf = format!("r=abcdef,s=c2FsdA==,i={i}");
        assert!(
            matches!(c.fin(sf.as_bytes()), Err(ScramError::Malformed(_))),
            "{i}"
        );
    }
}

#[test]
fn credential_rules() {
    let c = rfc_credential();
    assert!(c.validate().is_ok());
    assert!(c.verify_password("pencil"));
    assert!(!c.verify_password("pencil "));
    assert!(!c.verify_password(""));
    // The salted password path (AlterUserScramCredentials) gives the same credential.
    let salt = B64.decode(RFC_SALT).unwrap();
    let salted = cairn_auth::salted_password(ScramMechanism::Sha256, "pencil", &salt, 4096);
    assert_eq!(
        ScramCredential::from_salted_password(ScramMechanism::Sha256, &salt, &salted, 4096),
        c
    );
    let mut bad = c.clone();
    bad.iterations = MAX_ITERATIONS + 1;
    assert!(bad.validate().is_err());
    assert!(!bad.verify_password("pencil"));
    let mut bad = c.clone();
    bad.stored_key.pop();
    assert!(bad.validate().is_err());
    let mut bad = c;
    bad.salt.clear();
    assert!(bad.validate().is_err());
}

#[test]
fn mechanism_names_and_codes() {
    for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
        assert_eq!(ScramMechanism::from_name(m.name()), Some(m));
        assert_eq!(ScramMechanism::from_kafka_code(m.kafka_code()), Some(m));
        assert_eq!(m.min_iterations(), 4096);
    }
    assert_eq!(ScramMechanism::Sha256.kafka_code(), 1);
    assert_eq!(ScramMechanism::Sha512.kafka_code(), 2);
    assert_eq!(ScramMechanism::from_kafka_code(0), None);
    assert_eq!(ScramMechanism::from_name("scram-sha-256"), None);
    assert_eq!(ScramMechanism::MAX_ITERATIONS, 16384);
    assert_eq!(cairn_auth::random_salt().len(), 32);
    assert_ne!(cairn_auth::random_salt(), cairn_auth::random_salt());
}

/// Small deterministic generator, so a failure is reproducible from the seed.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, base: &[u8]) -> Vec<u8> {
    const ALPHABET: &[u8] = b",=nrcpvsia0123456789+/ \x00\xff";
    let mut m = base.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(4) {
            0 if !m.is_empty() => {
                let i = rng.below(m.len());
                m[i] = ALPHABET[rng.below(ALPHABET.len())];
            }
            1 if !m.is_empty() => {
                let i = rng.below(m.len());
                m.remove(i);
            }
            2 => {
                let i = rng.below(m.len() + 1);
                m.insert(i, ALPHABET[rng.below(ALPHABET.len())]);
            }
            _ => {
                let cut = rng.below(m.len() + 1);
                m.truncate(cut);
            }
        }
    }
    m
}

/// Random and mutated messages at each step: always a Result, never a panic, and a mutated
/// final message never authenticates. Nonces are fixed so the genuine client-final is computed
/// once (Hi is the slow part) and each round only exercises the server.
#[test]
fn seeded_fuzz_never_panics() {
    const SNONCE: &str = "server-nonce";
    let cred = rfc_credential();
    let mut c = ScramClient::with_nonce(ScramMechanism::Sha256, "user", "pencil", "cnonce");
    let first = c.first();
    let mut s = ScramServer::with_nonce(ScramMechanism::Sha256, SNONCE);
    let sf = s.client_first(&first, |_| Some(cred.clone())).unwrap();
    let cf = c.fin(&sf).unwrap();
    assert!(s.client_final(&cf).is_ok());

    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for round in 0..20_000 {
        let mut s = ScramServer::with_nonce(ScramMechanism::Sha256, SNONCE);
        if round % 2 == 0 {
            let input: Vec<u8> = if round % 4 == 0 {
                (0..rng.below(64)).map(|_| rng.next() as u8).collect()
            } else {
                mutate(&mut rng, &first)
            };
            if s.client_first(&input, |_| Some(cred.clone())).is_ok() {
                let garbage: Vec<u8> = (0..rng.below(96)).map(|_| rng.next() as u8).collect();
                assert!(s.client_final(&garbage).is_err());
            }
            continue;
        }
        s.client_first(&first, |_| Some(cred.clone())).unwrap();
        let fin = mutate(&mut rng, &cf);
        if fin != cf {
            if let Ok((_, user)) = s.client_final(&fin) {
                panic!(
                    "mutated final message authenticated {user}: {:?}",
                    String::from_utf8_lossy(&fin)
                );
            }
        }
    }
}

#[test]
fn upsertion_rules() {
    use cairn_auth::scram::validate_upsertion;
    let m = ScramMechanism::Sha512;
    assert_eq!(validate_upsertion(m, "alice", b"salt", 4096), Ok(()));
    assert_eq!(
        validate_upsertion(m, "alice", b"salt", MAX_ITERATIONS),
        Ok(())
    );
    assert_eq!(
        validate_upsertion(m, "", b"salt", 4096).unwrap_err(),
        "Username must not be empty"
    );
    assert_eq!(
        validate_upsertion(m, "alice", b"salt", 4095).unwrap_err(),
        "Too few iterations"
    );
    assert_eq!(
        validate_upsertion(m, "alice", b"salt", MAX_ITERATIONS + 1).unwrap_err(),
        "Too many iterations"
    );
    assert!(validate_upsertion(m, "alice", b"", 4096).is_err());
    assert!(validate_upsertion(m, "alice", &[0; 1025], 4096).is_err());
    // Whatever passes makes a credential that passes the stricter check used on load.
    let salted = cairn_auth::salted_password(m, "pw", b"salt", 4096);
    let cred = ScramCredential::from_salted_password(m, b"salt", &salted, 4096);
    assert!(cred.validate().is_ok());
}

/// librdkafka 2.0 writes its own nonce before the whole server nonce in client-final
/// (`r=<client><client+server>`); Kafka accepts a nonce that ends with the server's, and so do we.
#[test]
fn a_client_nonce_repeated_before_the_server_nonce_is_accepted() {
    use hmac::{Hmac, Mac};
    use sha2::{Digest, Sha256};
    let hmac = |key: &[u8], data: &[u8]| {
        let mut m = <Hmac<Sha256>>::new_from_slice(key).unwrap();
        m.update(data);
        m.finalize().into_bytes().to_vec()
    };
    let mut s = ScramServer::new(ScramMechanism::Sha256);
    let first_bare = "n=user,r=cnonce";
    let sf = s
        .client_first(format!("n,,{first_bare}").as_bytes(), |_| {
            Some(rfc_credential())
        })
        .unwrap();
    let sf = String::from_utf8(sf).unwrap();
    let full = sf.split(',').next().unwrap().strip_prefix("r=").unwrap();
    let salt = B64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
    let salted = cairn_auth::salted_password(ScramMechanism::Sha256, "pencil", &salt, 4096);
    let client_key = hmac(&salted, b"Client Key");
    let stored_key = Sha256::digest(&client_key).to_vec();
    let without_proof = format!("c=biws,r=cnonce{full}");
    let auth = format!("{first_bare},{sf},{without_proof}");
    let sig = hmac(&stored_key, auth.as_bytes());
    let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
    let cf = format!("{without_proof},p={}", B64.encode(proof));
    let (_, user) = s.client_final(cf.as_bytes()).unwrap();
    assert_eq!(user, "user");
}
