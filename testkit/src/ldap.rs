//! OpenLDAP (Debian's `slapd`) as a directory: a server of the test's own on a loopback port, its
//! database made from a fixture (`slapadd`) in a temporary directory, stopped when dropped.
//!
//! The fixture, under `dc=example,dc=org` (the root `cn=admin,dc=example,dc=org`, password
//! [`Slapd::ROOT_PASSWORD`], is the search DN):
//! - people (`ou=people`): `alice` (Alice Liddell, alice@example.org), `bob`, `jose` (José
//!   Núñez: a non-ASCII name), `carol` (`employeeType: disabled`, left out by the filter tests
//!   use), `dave` (in the admin group); every password is `<uid>-password`;
//! - groups (`ou=groups`, `groupOfNames`): `developers` (alice, jose), `registry-admins` (dave).

/// The directory's suffix.
pub const BASE: &str = "dc=example,dc=org";

/// A running slapd.
pub struct Slapd {
    /// `ldap://127.0.0.1:<port>`.
    pub url: String,
    /// `ldaps://127.0.0.1:<port>`, when started with TLS.
    pub ldaps_url: Option<String>,
    /// The CA (PEM) its certificate is issued by, when started with TLS.
    pub ca_pem: Option<String>,
    child: tokio::process::Child,
    _work: tempfile::TempDir,
}

const FIXTURE: &str = "dn: dc=example,dc=org
objectClass: dcObject
objectClass: organization
o: Example
dc: example

dn: ou=people,dc=example,dc=org
objectClass: organizationalUnit
ou: people

dn: ou=groups,dc=example,dc=org
objectClass: organizationalUnit
ou: groups

dn: uid=alice,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: alice
cn: Alice Liddell
sn: Liddell
mail: alice@example.org
userPassword: alice-password

dn: uid=bob,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: bob
cn: Bob Builder
sn: Builder
mail: bob@example.org
userPassword: bob-password

dn: uid=jose,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: jose
cn:: Sm9zw6kgTsO6w7Fleg==
sn:: TsO6w7Fleg==
mail: jose@example.org
userPassword: jose-password

dn: uid=carol,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: carol
cn: Carol Gone
sn: Gone
employeeType: disabled
userPassword: carol-password

dn: uid=dave,ou=people,dc=example,dc=org
objectClass: inetOrgPerson
uid: dave
cn: Dave Admin
sn: Admin
mail: dave@example.org
userPassword: dave-password

dn: cn=developers,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: developers
member: uid=alice,ou=people,dc=example,dc=org
member: uid=jose,ou=people,dc=example,dc=org

dn: cn=registry-admins,ou=groups,dc=example,dc=org
objectClass: groupOfNames
cn: registry-admins
member: uid=dave,ou=people,dc=example,dc=org
";

impl Slapd {
    /// The root's password.
    pub const ROOT_PASSWORD: &'static str = "root-secret";
    /// The root (the search DN).
    pub const ROOT_DN: &'static str = "cn=admin,dc=example,dc=org";

    /// Starts one with the fixture; returns once it accepts connections.
    pub async fn start() -> Slapd {
        Slapd::start_with(false).await
    }

    /// Starts one that also speaks TLS: `ldaps://` on a second port and StartTLS on the first,
    /// with a certificate for 127.0.0.1 issued by a CA of its own ([`Slapd::ca_pem`]).
    pub async fn start_tls() -> Slapd {
        Slapd::start_with(true).await
    }

    async fn start_with(tls: bool) -> Slapd {
        let work = tempfile::tempdir().expect("tempdir");
        let dir = work.path();
        let mut tls_config = String::new();
        let mut ca_pem = None;
        if tls {
            let (ca, cert, key) = certificates();
            for (name, text) in [("ca.pem", &ca), ("server.pem", &cert), ("server.key", &key)] {
                std::fs::write(dir.join(name), text).expect("a TLS file");
            }
            tls_config = format!(
                "TLSCACertificateFile {}\nTLSCertificateFile {}\nTLSCertificateKeyFile {}\n",
                dir.join("ca.pem").display(),
                dir.join("server.pem").display(),
                dir.join("server.key").display()
            );
            ca_pem = Some(ca);
        }
        std::fs::create_dir_all(dir.join("db")).expect("db dir");
        let config = dir.join("slapd.conf");
        std::fs::write(
            &config,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
                 pidfile {pid}\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n{tls_config}\
                 database mdb\nmaxsize 16777216\nsuffix \"{BASE}\"\nrootdn \"{root}\"\nrootpw {pw}\n\
                 directory {db}\n",
                pid = dir.join("slapd.pid").display(),
                root = Slapd::ROOT_DN,
                pw = Slapd::ROOT_PASSWORD,
                db = dir.join("db").display()
            ),
        )
        .expect("slapd.conf");
        let ldif = dir.join("fixture.ldif");
        std::fs::write(&ldif, FIXTURE).expect("fixture");
        let added = tokio::process::Command::new("slapadd")
            .arg("-f")
            .arg(&config)
            .arg("-l")
            .arg(&ldif)
            .output()
            .await
            .expect("slapadd runs (apt-get install -y slapd)");
        assert!(added.status.success(), "slapadd: {}", String::from_utf8_lossy(&added.stderr));
        let free = crate::unused_port;
        let url = format!("ldap://127.0.0.1:{}", free());
        let ldaps_url = tls.then(|| format!("ldaps://127.0.0.1:{}", free()));
        let listen = match &ldaps_url {
            Some(ldaps) => format!("{url}/ {ldaps}/"),
            None => format!("{url}/"),
        };
        let mut command = tokio::process::Command::new("slapd");
        command.arg("-f").arg(&config).arg("-h").arg(&listen).args(["-d", "256"]);
        let child = crate::spawn_until_ready(command, "slapd starting", "slapd (apt-get install -y slapd)").await;
        Slapd { url, ldaps_url, ca_pem, child, _work: work }
    }

    /// Stops it (its port then refuses connections).
    pub async fn stop(mut self) {
        self.child.kill().await.expect("stop slapd");
    }

    /// Kills it, keeping the value (for a test of the directory being down).
    pub async fn kill(&mut self) {
        self.child.kill().await.expect("kill slapd");
    }
}

/// A CA, and a server certificate for 127.0.0.1 it issued with its key (all PEM).
fn certificates() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a CA key");
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::DigitalSignature];
    ca.distinguished_name.push(rcgen::DnType::CommonName, "directory test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("a CA");
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("a server key");
    let mut server = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).expect("params");
    server.distinguished_name.push(rcgen::DnType::CommonName, "127.0.0.1");
    server.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = server.signed_by(&key, &issuer).expect("a server certificate");
    (ca_cert.pem(), cert.pem(), key.serialize_pem())
}
