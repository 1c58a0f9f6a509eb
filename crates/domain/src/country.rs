//! Countries: this backend's own, the supported ones, and those a key was used in.

use crate::ParseError;
use std::fmt;
use std::str::FromStr;

/// An ISO 3166 alpha-2 country code: exactly two upper-case ASCII letters (`DE`). Not a secret:
/// it is shown as it is (`Debug`, `Display`).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Deserialize, serde::Serialize)]
#[serde(try_from = "String", into = "String")]
pub struct CountryCode(String);

fn is_country(c: &str) -> bool {
    c.len() == 2 && c.bytes().all(|b| b.is_ascii_uppercase())
}

impl CountryCode {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<&str> for CountryCode {
    type Error = ParseError;

    fn try_from(s: &str) -> Result<Self, ParseError> {
        if is_country(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(ParseError::CountryCode)
        }
    }
}

impl TryFrom<String> for CountryCode {
    type Error = ParseError;

    fn try_from(s: String) -> Result<Self, ParseError> {
        if is_country(&s) {
            Ok(Self(s))
        } else {
            Err(ParseError::CountryCode)
        }
    }
}

impl FromStr for CountryCode {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, ParseError> {
        Self::try_from(s)
    }
}

impl From<CountryCode> for String {
    fn from(c: CountryCode) -> String {
        c.0
    }
}

impl PartialEq<str> for CountryCode {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for CountryCode {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// The countries a key was used in: sorted, each once. Stored as one text column of
/// comma-separated codes ([`Self::to_db`], [`Self::from_db`]); on the wire a list of codes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct VisitedCountries(Vec<CountryCode>);

/// The separator of the database form.
const SEPARATOR: char = ',';

impl VisitedCountries {
    /// The database form: the codes joined with commas (`DE,FR`; empty for none).
    pub fn to_db(&self) -> String {
        let codes: Vec<&str> = self.0.iter().map(CountryCode::as_str).collect();
        codes.join(&SEPARATOR.to_string())
    }

    /// From the database form; empty entries are skipped (the empty text is no country).
    pub fn from_db(joined: &str) -> Result<Self, ParseError> {
        joined
            .split(SEPARATOR)
            .filter(|c| !c.is_empty())
            .map(CountryCode::from_str)
            .collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &CountryCode> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The codes as strings, for the wire (gRPC, protobuf).
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|c| c.0.clone()).collect()
    }
}

/// Sorts the codes and drops repeats.
impl FromIterator<CountryCode> for VisitedCountries {
    fn from_iter<I: IntoIterator<Item = CountryCode>>(codes: I) -> Self {
        let mut codes: Vec<CountryCode> = codes.into_iter().collect();
        codes.sort();
        codes.dedup();
        Self(codes)
    }
}

impl<'a> IntoIterator for &'a VisitedCountries {
    type Item = &'a CountryCode;
    type IntoIter = std::slice::Iter<'a, CountryCode>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn code(s: &str) -> CountryCode {
        s.parse().unwrap()
    }

    #[test]
    fn country_codes_are_two_upper_case_letters() {
        assert_eq!(code("DE").as_str(), "DE");
        assert_eq!(code("FR").to_string(), "FR");
        assert_eq!(format!("{:?}", code("NL")), "\"NL\"");
        assert!(code("DE") == "DE");
        for bad in ["de", "D", "DEU", "D1", "", "ÄÄ", " DE"] {
            assert_eq!(
                bad.parse::<CountryCode>(),
                Err(ParseError::CountryCode),
                "{bad}"
            );
            assert!(CountryCode::try_from(bad.to_owned()).is_err());
        }
    }

    #[test]
    fn country_codes_are_serde_strings() {
        assert_eq!(serde_json::to_string(&code("DE")).unwrap(), "\"DE\"");
        assert_eq!(
            serde_json::from_str::<CountryCode>("\"FR\"").unwrap(),
            code("FR")
        );
        assert!(serde_json::from_str::<CountryCode>("\"fr\"").is_err());
    }

    #[test]
    fn visited_countries_are_sorted_and_unique() {
        let v: VisitedCountries = ["NL", "FR", "NL", "DE"].into_iter().map(code).collect();
        assert_eq!(v.to_strings(), vec!["DE", "FR", "NL"]);
        assert_eq!(v.len(), 3);
        assert_eq!(v.iter().next(), Some(&code("DE")));
    }

    #[test]
    fn the_database_form_joins_with_commas_and_reads_back() {
        let v: VisitedCountries = ["FR", "DE"].into_iter().map(code).collect();
        assert_eq!(v.to_db(), "DE,FR");
        assert_eq!(VisitedCountries::from_db("DE,FR").unwrap(), v);
        let none = VisitedCountries::default();
        assert_eq!(none.to_db(), "");
        assert!(VisitedCountries::from_db("").unwrap().is_empty());
        assert_eq!(
            VisitedCountries::from_db("DE,,FR,").unwrap(),
            v,
            "empty entries are skipped"
        );
        assert_eq!(
            VisitedCountries::from_db("DE,fr"),
            Err(ParseError::CountryCode)
        );
        let one: VisitedCountries = [code("DE")].into_iter().collect();
        assert_eq!(VisitedCountries::from_db(&one.to_db()).unwrap(), one);
    }
}
