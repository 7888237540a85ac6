//! The bundle document as served, rendered once per bundle change, and the one route SPIRE's
//! endpoint has: `GET /` (any other method: 405, any other path: 404, with Go's bodies).

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HeaderValue, X_CONTENT_TYPE_OPTIONS};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use spire_svid::Bundle;

const JSON: HeaderValue = HeaderValue::from_static("application/json");
const TEXT: HeaderValue = HeaderValue::from_static("text/plain; charset=utf-8");
const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// The SPIFFE bundle document of `bundle` with `spiffe_refresh_hint` replaced by the
/// endpoint's configured hint (seconds), as SPIRE's endpoint overrides it.
pub(crate) fn render(bundle: &Bundle, refresh_hint_secs: i64) -> Bytes {
    let mut served = bundle.clone();
    served.refresh_hint = refresh_hint_secs;
    Bytes::from(served.to_spiffe_json())
}

/// The response to `request`: the document for `GET /`, Go's `http.Error` replies otherwise.
/// The method is checked before the path, as SPIRE does.
pub(crate) fn respond<B>(request: &Request<B>, document: Bytes) -> Response<Full<Bytes>> {
    if request.method() != Method::GET {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "405 method not allowed\n");
    }
    if request.uri().path() != "/" {
        return plain(StatusCode::NOT_FOUND, "404 page not found\n");
    }
    let mut response = Response::new(Full::new(document));
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

fn plain(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, TEXT);
    headers.insert(X_CONTENT_TYPE_OPTIONS, NOSNIFF);
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use spire_id::TrustDomain;

    fn request(method: Method, path: &str) -> Request<()> {
        Request::builder()
            .method(method)
            .uri(path)
            .body(())
            .unwrap()
    }

    #[test]
    fn get_root_serves_the_document_as_json() {
        let response = respond(&request(Method::GET, "/"), Bytes::from_static(b"{}"));
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
    }

    #[test]
    fn method_is_checked_before_path() {
        let response = respond(&request(Method::POST, "/other"), Bytes::new());
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let response = respond(&request(Method::HEAD, "/"), Bytes::new());
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        let response = respond(&request(Method::GET, "/other"), Bytes::new());
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8"
        );
    }

    #[test]
    fn the_configured_hint_replaces_the_bundle_hint() {
        let mut bundle = Bundle::new(TrustDomain::new("example.org").unwrap());
        bundle.refresh_hint = 7;
        bundle.sequence_number = 3;
        let rendered = render(&bundle, 300);
        let text = std::str::from_utf8(&rendered).unwrap();
        assert!(text.contains("\"spiffe_refresh_hint\": 300"), "{text}");
        assert!(text.contains("\"spiffe_sequence\": 3"), "{text}");
    }
}
