//! OpenLDAP (Debian's `slapd`) as a directory: a server of the test's own on a loopback port, its
//! database made from a fixture (`slapadd`) in a temporary directory, stopped when dropped.
//!
//! The fixture, under `dc=example,dc=org` (the root `cn=admin,dc=example,dc=org`, password
//! [`Slapd::ROOT_PASSWORD`], is the search DN):
//! - people (`ou=people`): `alice` (Alice Liddell, alice@example.org), `bob`, `jose` (José
//!   Núñez: a non-ASCII name), `carol` (`employeeType: disabled`, left out by the filter tests
//!   use), `dave` (in the admin group); every password is `<uid>-password`;
//! - groups (`ou=groups`, `groupOfNames`): `developers` (alice, jose), `registry-admins` (dave).

use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};

/// The directory's suffix.
pub const BASE: &str = "dc=example,dc=org";

/// A running slapd.
pub struct Slapd {
    /// `ldap://127.0.0.1:<port>`.
    pub url: String,
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
        let work = tempfile::tempdir().expect("tempdir");
        let dir = work.path();
        std::fs::create_dir_all(dir.join("db")).expect("db dir");
        let config = dir.join("slapd.conf");
        std::fs::write(
            &config,
            format!(
                "include /etc/ldap/schema/core.schema\ninclude /etc/ldap/schema/cosine.schema\n\
                 include /etc/ldap/schema/inetorgperson.schema\ninclude /etc/ldap/schema/nis.schema\n\
                 pidfile {pid}\nmodulepath /usr/lib/ldap\nmoduleload back_mdb\n\
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
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let url = format!("ldap://127.0.0.1:{port}");
        let mut child = tokio::process::Command::new("slapd")
            .arg("-f")
            .arg(&config)
            .arg("-h")
            .arg(format!("{url}/"))
            .args(["-d", "256"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("slapd starts (apt-get install -y slapd)");
        let mut log = BufReader::new(child.stderr.take().expect("stderr")).lines();
        loop {
            let line = log.next_line().await.expect("log").expect("slapd exited before serving");
            if line.contains("slapd starting") {
                break;
            }
        }
        tokio::spawn(async move { while let Ok(Some(_)) = log.next_line().await {} });
        Slapd { url, child, _work: work }
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
