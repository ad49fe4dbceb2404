//! Certificates for the test servers, made with openssl: a test CA, a server certificate
//! for 127.0.0.1 signed by it, client certificates for mutual TLS. For tests only: a failed
//! openssl run panics with its stderr.

use std::path::Path;

fn openssl(args: &[&str], dir: &Path) {
    super::stdout_of(
        std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir),
    );
}

/// A self-signed test CA, `ca.key` and `ca.crt`, written into `dir` (created); returns
/// the certificate (PEM).
pub fn ca(dir: &Path) -> Vec<u8> {
    std::fs::create_dir_all(dir).unwrap();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=lazyoci test CA",
        ],
        dir,
    );
    std::fs::read(dir.join("ca.crt")).unwrap()
}

/// A test CA (`ca.crt`) and a server certificate for 127.0.0.1 and localhost signed by it
/// (`srv.crt`, `srv.key`), written into `dir` (created).
pub fn tls_certs(dir: &Path) {
    ca(dir);
    signed(
        dir,
        "srv",
        "/CN=127.0.0.1",
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    );
}

/// A client certificate `<name>.crt`/`<name>.key` signed by the test CA in `dir` (made by
/// [`tls_certs`]), for mutual TLS.
pub fn client_cert(dir: &Path, name: &str) {
    signed(
        dir,
        name,
        &format!("/CN={name}"),
        "extendedKeyUsage=clientAuth\n",
    );
}

/// A key and certificate `<name>.key`/`<name>.crt` for `subject`, signed by the test CA in
/// `dir`, with the openssl extension lines `ext`.
fn signed(dir: &Path, name: &str, subject: &str, ext: &str) {
    let (key, csr, crt, ext_file) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
        format!("{name}.ext"),
    );
    openssl(
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-out", &csr, "-subj", subject,
        ],
        dir,
    );
    std::fs::write(dir.join(&ext_file), ext).unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &crt,
            "-days",
            "2",
            "-extfile",
            &ext_file,
        ],
        dir,
    );
}
