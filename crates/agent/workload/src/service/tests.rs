use tonic::Code;
use tonic::metadata::MetadataValue;

use super::*;

fn request(values: &[&'static str]) -> Request<()> {
    let mut request = Request::new(());
    for value in values {
        request
            .metadata_mut()
            .append(SECURITY_HEADER, MetadataValue::from_static(value));
    }
    request
}

#[test]
fn security_header_must_be_exactly_one_true() {
    assert!(check_security_header(request(&["true"])).is_ok());
    for bad in [
        &[][..],
        &["True"],
        &["false"],
        &[""],
        &["true", "true"],
        &["true", "false"],
    ] {
        let status = check_security_header(request(bad)).unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{bad:?}");
        assert_eq!(status.message(), "security header missing from request");
    }
}

#[test]
fn a_request_without_connect_info_has_no_pid() {
    assert_eq!(caller_pid(&Request::new(())), None);
}
