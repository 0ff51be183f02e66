"""Generated product pairs, half duplicates and half unrelated, with labels to check scores.

A duplicate is the same product listed again the way sellers do it: attributes reordered,
abbreviated, lower-cased, with a seller's words around them. An unrelated pair joins two
different products. Lengths follow a catalogue: mostly short titles, some with a
sentence of description, a few with several, so every sequence bucket gets used.

    python -m inferfleet.cli.batch.sample_pairs --out pairs/ --files 4 --records 1000
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from inferfleet.cli import output_folder
from inferfleet.cli.errors import UserError

PRODUCTS = [
    ("Apple", "iPhone 13", ["128GB", "256GB"], ["blue", "midnight", "starlight"]),
    ("Samsung", "Galaxy S22 smartphone", ["128GB", "256GB"], ["phantom black", "green"]),
    ("Sony", "WH-1000XM4 wireless noise cancelling headphones", [], ["black", "silver"]),
    ("Nike", "Air Zoom Pegasus running shoes", ["size 9", "size 10", "size 11"], ["white"]),
    ("Adidas", "Ultraboost 22 men's running shoe", ["size 10", "size 12"], ["core black"]),
    ("KitchenAid", "Artisan stand mixer 5 quart", [], ["empire red", "onyx black"]),
    ("Instant Pot", "Duo 7-in-1 electric pressure cooker", ["6 quart", "8 quart"], []),
    ("Lego", "Star Wars Millennium Falcon building kit", ["1351 pieces"], []),
    ("Dyson", "V11 cordless stick vacuum cleaner", [], ["nickel", "blue"]),
    ("Levi's", "501 original fit jeans", ["32x32", "34x30"], ["dark stonewash"]),
    ("Logitech", "MX Master 3 wireless mouse", [], ["graphite", "pale grey"]),
    ("Keurig", "K-Classic single serve coffee maker", [], ["black", "rhubarb"]),
    ("Garmin", "Forerunner 245 GPS running watch", [], ["slate grey", "berry"]),
    ("Hydro Flask", "wide mouth insulated water bottle", ["32 oz", "40 oz"], ["pacific"]),
    ("Canon", "EOS Rebel T7 DSLR camera with 18-55mm lens", ["24.1 MP"], []),
    ("Philips", "Sonicare 4100 rechargeable electric toothbrush", [], ["white", "black"]),
    ("Yeti", "Tundra 45 hard cooler", [], ["tan", "charcoal"]),
    ("Bose", "SoundLink Flex portable bluetooth speaker", [], ["stone blue", "black"]),
    ("Crayola", "washable markers classic colors", ["10 count", "40 count"], []),
    ("Nespresso", "Vertuo Next coffee and espresso machine", [], ["matte black"]),
]
SELLER_WORDS = ["new", "brand new", "free shipping", "authentic", "fast delivery", "sale"]
DESCRIPTIONS = [
    "Ships in the original packaging with the manufacturer's warranty and all accessories.",
    "Lightweight design for everyday use, easy to clean and built to last for years.",
    "Customers love the comfortable fit and the long battery life on a single charge.",
    "Includes a quick start guide; returns are accepted within thirty days of delivery.",
]
ABBREVIATIONS = {"GB": " gb", "quart": "qt", "size ": "sz ", "wireless": "wless", "oz": "ounce"}


@dataclass(frozen=True)
class Listing:
    brand: str
    line: str
    attributes: tuple[str, ...]


def _listing(rng: random.Random, index: int) -> Listing:
    brand, line, sizes, colors = PRODUCTS[index]
    attributes = [rng.choice(group) for group in (sizes, colors) if group]
    return Listing(brand, line, tuple(attributes))


def canonical_title(listing: Listing) -> str:
    return " ".join([listing.brand, listing.line, *listing.attributes])


def reworded_title(rng: random.Random, listing: Listing) -> str:
    """The same product as another seller lists it."""
    parts = [listing.line, *listing.attributes]
    rng.shuffle(parts)
    if rng.random() < 0.8:
        parts.insert(rng.randrange(len(parts) + 1), listing.brand)
    text = " ".join(parts)
    for word, short in ABBREVIATIONS.items():
        if rng.random() < 0.5:
            text = text.replace(word, short)
    if rng.random() < 0.5:
        text = text.lower()
    if rng.random() < 0.5:
        words = rng.choice(SELLER_WORDS)
        text = f"{words} {text}" if rng.random() < 0.5 else f"{text} - {words}"
    return text


def _with_description(rng: random.Random, title: str) -> str:
    """Mostly bare titles; some carry one sentence, a few several."""
    roll = rng.random()
    sentences = 0 if roll < 0.7 else 1 if roll < 0.9 else 2 if roll < 0.98 else 5
    return " ".join([title, *(rng.choice(DESCRIPTIONS) for _ in range(sentences))])


def sample_pairs(count: int, seed: int = 0, id_prefix: str = "p") -> Iterator[dict]:
    """``count`` records ``{"id", "left", "right", "label"}``, alternating the two labels."""
    rng = random.Random(seed)
    for number in range(count):
        first = rng.randrange(len(PRODUCTS))
        listing = _listing(rng, first)
        if number % 2 == 0:
            right, label = reworded_title(rng, listing), "duplicate"
        else:
            other = rng.choice([i for i in range(len(PRODUCTS)) if i != first])
            right, label = canonical_title(_listing(rng, other)), "unrelated"
        yield {
            "id": f"{id_prefix}{number}",
            "left": _with_description(rng, canonical_title(listing)),
            "right": _with_description(rng, right),
            "label": label,
        }


def write_sample(out_dir: Path, files: int, records: int, seed: int = 0) -> list[Path]:
    """``files`` JSON Lines files of ``records`` pairs each; ids are unique across them."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for index in range(files):
        path = out_dir / f"pairs-{index:04d}.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for record in sample_pairs(records, seed=seed + index, id_prefix=f"f{index}-"):
                handle.write(json.dumps(record) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--files", type=int, default=4)
    parser.add_argument("--records", type=int, default=1000, help="pairs per file")
    parser.add_argument("--seed", type=int, default=0)
    arguments = parser.parse_args(argv)
    try:
        output_folder.claim(arguments.out, flag="--out", writer="sample_pairs")
    except UserError as error:
        parser.exit(error.exit_code, f"error: {error}\n")
    for path in write_sample(arguments.out, arguments.files, arguments.records, arguments.seed):
        print(path)


if __name__ == "__main__":
    main()
