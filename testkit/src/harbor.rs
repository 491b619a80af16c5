//! A caller of Harbor's management API (`/api/v2.0`) for tests: requests with Basic
//! credentials, answers with their status, headers and JSON body, and Harbor's error envelope
//! checked.

use registry_http::TestRegistry;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::client;

/// A caller of the management API.
pub struct Api {
    /// The HTTP client.
    pub c: reqwest::Client,
    /// The registry's URL.
    pub base: String,
    /// Basic credentials, if any.
    pub creds: Option<(String, String)>,
}

/// An answer: status, headers, JSON body (null when empty).
pub struct Answer {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: reqwest::header::HeaderMap,
    /// The JSON body (null when empty; a string when not JSON).
    pub body: Value,
}

impl Answer {
    /// A header's value (empty when absent).
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
    }

    /// The id the `Location` header ends with (what a creation made).
    #[track_caller]
    pub fn id(&self) -> u64 {
        let location = self.header("location");
        location.rsplit('/').next().and_then(|id| id.parse().ok()).unwrap_or_else(|| panic!("no id in {location:?}"))
    }

    /// Asserts the status and, for errors, Harbor's code.
    #[track_caller]
    pub fn expect(self, status: StatusCode, code: Option<&str>) -> Answer {
        assert_eq!(self.status, status, "{}", self.body);
        if let Some(code) = code {
            assert_eq!(self.body["errors"][0]["code"], code, "{}", self.body);
            assert!(self.body["errors"][0]["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        self
    }
}

impl Api {
    /// A caller of `reg` with these credentials (none: anonymous).
    pub fn new(reg: &TestRegistry, creds: Option<(&str, &str)>) -> Api {
        Api { c: client(), base: reg.url(), creds: creds.map(|(u, p)| (u.to_owned(), p.to_owned())) }
    }

    /// One request.
    pub async fn send(&self, method: Method, path: &str, body: Option<Value>, headers: &[(&str, &str)]) -> Answer {
        let mut req = self.c.request(method, format!("{}/api/v2.0{path}", self.base));
        if let Some((u, p)) = &self.creds {
            req = req.basic_auth(u, Some(p));
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("request");
        let (status, headers) = (resp.status(), resp.headers().clone());
        let text = resp.text().await.expect("body");
        let body =
            if text.is_empty() { Value::Null } else { serde_json::from_str(&text).unwrap_or(Value::String(text)) };
        Answer { status, headers, body }
    }

    /// `GET`.
    pub async fn get(&self, path: &str) -> Answer {
        self.send(Method::GET, path, None, &[]).await
    }

    /// `POST`.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.send(Method::POST, path, Some(body), &[]).await
    }

    /// `PUT`.
    pub async fn put(&self, path: &str, body: Value) -> Answer {
        self.send(Method::PUT, path, Some(body), &[]).await
    }

    /// `DELETE`.
    pub async fn delete(&self, path: &str) -> Answer {
        self.send(Method::DELETE, path, None, &[]).await
    }
}

/// The id at the end of a `Location` header.
pub fn location_id(a: &Answer) -> u64 {
    a.header("location").rsplit('/').next().and_then(|id| id.parse().ok()).expect("an id in Location")
}
