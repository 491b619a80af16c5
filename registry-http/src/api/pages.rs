//! Harbor's pagination: `page` (from 1) and `page_size` (default 10, at most 100) in the query;
//! `X-Total-Count` and a `Link` header with `rel="prev"` and `rel="next"` in the response, which
//! keep the other query parameters.

use http::header::LINK;
use http::{Response, StatusCode};

use super::ApiCall;
use super::context::bad_request;
use crate::error::ApiError;
use crate::request::percent_encode;
use crate::response::{ResponseBody, X_TOTAL_COUNT, json, set};

/// Largest page.
pub const MAX_PAGE_SIZE: u64 = 100;

/// A page request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    /// The page, from 1.
    pub page: u64,
    /// Its size.
    pub page_size: u64,
}

impl Paging {
    /// The paging of a request's query.
    pub(crate) fn of(call: &ApiCall) -> Result<Paging, ApiError> {
        let number = |key: &str, default: u64| -> Result<u64, ApiError> {
            match call.query.get(key) {
                None | Some("") => Ok(default),
                Some(v) => v.parse().map_err(|_| bad_request(format!("{key} must be a positive number, not {v:?}"))),
            }
        };
        let page = number("page", 1)?.max(1);
        let page_size = number("page_size", 10)?;
        if page_size > MAX_PAGE_SIZE {
            return Err(bad_request(format!("page_size is at most {MAX_PAGE_SIZE}")));
        }
        Ok(Paging { page, page_size: if page_size == 0 { 10 } else { page_size } })
    }

    /// How many items come before this page.
    pub fn offset(&self) -> usize {
        usize::try_from((self.page - 1).saturating_mul(self.page_size)).unwrap_or(usize::MAX)
    }

    /// How many items it holds at most.
    pub fn limit(&self) -> usize {
        usize::try_from(self.page_size).unwrap_or(usize::MAX)
    }

    /// The items of this page.
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        items.into_iter().skip(self.offset()).take(self.limit()).collect()
    }
}

/// A JSON array response for one page of `items` (all of them given), with `X-Total-Count` and
/// `Link`.
pub(crate) fn page_of<T>(
    call: &ApiCall,
    path: &str,
    items: Vec<T>,
    to_json: impl Fn(T) -> serde_json::Value,
) -> Result<Response<ResponseBody>, ApiError> {
    let paging = Paging::of(call)?;
    let total = items.len() as u64;
    let page: Vec<serde_json::Value> = paging.slice(items).into_iter().map(to_json).collect();
    page_response(call, path, paging, page, total)
}

/// The response for one page a store cut (`page`, of `total` in all), with `X-Total-Count` and
/// `Link`.
pub(crate) fn page_response(
    call: &ApiCall,
    path: &str,
    paging: Paging,
    page: Vec<serde_json::Value>,
    total: u64,
) -> Result<Response<ResponseBody>, ApiError> {
    let mut r = json(StatusCode::OK, &serde_json::Value::Array(page));
    set(r.headers_mut(), X_TOTAL_COUNT, &total.to_string());
    let link_to = |page: u64| {
        let mut query: Vec<String> = call
            .query
            .pairs()
            .iter()
            .filter(|(k, _)| k != "page" && k != "page_size")
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        query.push(format!("page={page}"));
        query.push(format!("page_size={}", paging.page_size));
        format!("<{}?{}>", call.location(path), query.join("&"))
    };
    let mut links = Vec::new();
    if paging.page > 1 {
        links.push(format!("{}; rel=\"prev\"", link_to(paging.page - 1)));
    }
    if paging.page * paging.page_size < total {
        links.push(format!("{}; rel=\"next\"", link_to(paging.page + 1)));
    }
    if !links.is_empty() {
        set(r.headers_mut(), LINK, &links.join(" , "));
    }
    Ok(r)
}
