//! Whether an event has places for fans now: the catalogue says it from the sections'
//! counts, the waiting room from the counts its admission budget keeps
//! (`waitroom::domain::budget`).

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SaleState {
    /// Places can be bought.
    OnSale,
    /// Every remaining place is in someone's basket; some may come back (a hold that
    /// lapses or is given back), so waiting fans keep their place.
    AllHeld,
    /// Nothing for sale and nothing held: nobody more is admitted.
    SoldOut,
}

impl SaleState {
    /// From the places for sale and those in live holds.
    pub fn of(remaining: i64, held: i64) -> Self {
        match (remaining > 0, held > 0) {
            (true, _) => Self::OnSale,
            (false, true) => Self::AllHeld,
            (false, false) => Self::SoldOut,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_for_sale_come_first_then_holds() {
        assert_eq!(
            [SaleState::of(1, 0), SaleState::of(1, 5), SaleState::of(0, 5), SaleState::of(0, 0)],
            [SaleState::OnSale, SaleState::OnSale, SaleState::AllHeld, SaleState::SoldOut]
        );
    }
}
