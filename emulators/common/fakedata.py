"""Deterministic, realistic-looking seed data: the same seed gives the same companies, people and items."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

_COMPANY_FIRST = ["Adatum", "Contoso", "Fabrikam", "Litware", "Northwind", "Tailspin", "Wingtip", "Proseware",
                  "Alpine", "Coho", "Lucerne", "Trey", "Humongous", "Margie's", "Wide World", "Blue Yonder",
                  "Fourth Coffee", "Graphic Design", "Southridge", "Woodgrove", "Relecloud", "Munson's"]
_COMPANY_SECOND = ["Corporation", "Traders", "Industries", "Logistics", "Outfitters", "Supplies", "Systems",
                   "Foods", "Motors", "Furniture", "Electronics", "Textiles", "Works", "Partners", "Group"]
_COMPANY_SUFFIX = ["", " Ltd", " Inc.", " GmbH", " A/S", " AB", " BV", " LLC"]
_FIRST = ["Anna", "Ben", "Carla", "David", "Elena", "Farid", "Grace", "Henrik", "Ines", "Jonas", "Karin",
          "Liam", "Maja", "Nils", "Olivia", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Ulla", "Victor", "Wen",
          "Yusuf", "Zoe", "Aiko", "Bjørn", "Chloé", "Dmitri", "Eva"]
_LAST = ["Andersen", "Berg", "Clarke", "Dubois", "Eriksen", "Fischer", "García", "Hansen", "Ivanova", "Jensen",
         "Kowalski", "Larsen", "Moreau", "Nielsen", "O'Brien", "Petersen", "Quist", "Rossi", "Schmidt",
         "Tanaka", "Umar", "Vogel", "Walsh", "Xu", "Young", "Zimmermann"]
_STREETS = ["Main Street", "Market Square", "Harbour Road", "Station Road", "Church Lane", "Park Avenue",
            "Mill Lane", "King Street", "Queen's Road", "Bridge Street", "Elm Drive", "Lake View"]
# (city, state, postal code pattern, ISO country, phone prefix)
_CITIES = [
    ("Seattle", "WA", "98{:03d}", "US", "+1 206"), ("Atlanta", "GA", "30{:03d}", "US", "+1 404"),
    ("Chicago", "IL", "60{:03d}", "US", "+1 312"), ("London", "", "EC{:d}A 1BB", "GB", "+44 20"),
    ("Manchester", "", "M{:d} 1AE", "GB", "+44 161"), ("Copenhagen", "", "1{:03d}", "DK", "+45"),
    ("Aarhus", "", "8{:03d}", "DK", "+45"), ("Oslo", "", "0{:03d}", "NO", "+47"),
    ("Amsterdam", "", "10{:02d} AB", "NL", "+31 20"), ("Paris", "", "750{:02d}", "FR", "+33 1"),
    ("Munich", "BY", "80{:03d}", "DE", "+49 89"), ("Stockholm", "", "11{:d} 22", "SE", "+46 8"),
]
_ITEM_ADJ = ["Athens", "Paris", "London", "Rome", "Berlin", "Madrid", "Oslo", "Sydney", "Toronto", "Lima"]
_ITEM_NOUN = ["Desk", "Chair", "Guest Chair", "Lamp", "Mobile Pedestal", "Conference Table", "Whiteboard",
              "Bookcase", "Storage Unit", "Swivel Chair", "Filing Cabinet", "Monitor Arm"]


@dataclass(frozen=True)
class Address:
    line1: str
    city: str
    state: str
    postal_code: str
    country: str


class FakeData:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def guid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def company(self) -> str:
        r = self.rng
        return f"{r.choice(_COMPANY_FIRST)} {r.choice(_COMPANY_SECOND)}{r.choice(_COMPANY_SUFFIX)}"

    def person(self) -> tuple[str, str]:
        return self.rng.choice(_FIRST), self.rng.choice(_LAST)

    def address(self) -> tuple[Address, str]:
        """An address and a phone number in the same country."""
        r = self.rng
        city, state, pattern, country, prefix = r.choice(_CITIES)
        addr = Address(f"{r.randint(1, 250)} {r.choice(_STREETS)}", city, state,
                       pattern.format(r.randint(1, 99)), country)
        return addr, f"{prefix} {r.randint(100, 999)} {r.randint(1000, 9999)}"

    def domain(self, company: str) -> str:
        slug = "".join(ch for ch in company.lower().split(" ")[0] if ch.isalnum()) or "example"
        return f"{slug}.example.com"

    def email(self, first: str, last: str, domain: str) -> str:
        local = "".join(ch for ch in f"{first}.{last}".lower() if ch.isascii() and (ch.isalnum() or ch == "."))
        return f"{local}@{domain}"

    def item(self) -> str:
        return f"{self.rng.choice(_ITEM_ADJ).upper()} {self.rng.choice(_ITEM_NOUN)}"

    def price(self, low: float, high: float) -> float:
        return round(self.rng.uniform(low, high), 2)
