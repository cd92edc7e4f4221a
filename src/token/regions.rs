//! Twilio regions and the products each offers. An API key works only in the region where it
//! was created, so an account's region decides which grants its tokens can use.
//!
//! Source: Twilio's "Regional product and feature availability" page
//! (<https://www.twilio.com/docs/global-infrastructure/regional-product-and-feature-availability>),
//! as of 2026: US1 has every product; IE1 has Voice, Conversations (Chat) and TaskRouter; AU1
//! has Voice. Video and Sync exist in US1 only (a Video token signed by a key from another
//! region fails with error 51007). When Twilio adds a product to a region, an operator lists
//! the region's products in the account's `products` rather than waiting for this table.

use super::GrantName;

/// The region a token without a `twr` header is for.
pub const DEFAULT_REGION: &str = "us1";

/// Every region tokenmint knows, with its products.
const REGIONS: [(&str, &[GrantName]); 3] = [
    ("us1", &GrantName::ALL),
    ("ie1", &[GrantName::Voice, GrantName::Chat, GrantName::TaskRouter]),
    ("au1", &[GrantName::Voice]),
];

/// The products Twilio offers in `region`, if the table knows the region.
pub fn products_in(region: &str) -> Option<&'static [GrantName]> {
    REGIONS.iter().find(|(name, _)| *name == region).map(|(_, products)| *products)
}

/// The regions the table knows, for messages.
pub fn known_regions() -> impl Iterator<Item = &'static str> {
    REGIONS.iter().map(|(name, _)| *name)
}

/// Why `region` (set at `key`) is not a Twilio region, if it is not.
pub fn region_problem(key: &str, region: &str) -> Option<String> {
    let b = region.as_bytes();
    let plausible = b.len() >= 3 && b.len() <= 8 && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    (!plausible).then(|| format!("{key} {region:?} is not a Twilio region such as \"us1\", \"ie1\" or \"au1\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_and_sync_are_us1_only() {
        for region in known_regions() {
            let products = products_in(region).unwrap();
            for grant in [GrantName::Video, GrantName::Sync] {
                assert_eq!(products.contains(&grant), region == "us1", "{grant} in {region}");
            }
            assert!(products.contains(&GrantName::Voice), "voice is everywhere");
        }
        assert_eq!(products_in("ie1"), Some(&[GrantName::Voice, GrantName::Chat, GrantName::TaskRouter][..]));
        assert_eq!(products_in("jp1"), None);
    }
}
