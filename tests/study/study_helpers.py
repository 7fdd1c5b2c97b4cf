"""A tiny NusaX-shaped data folder for the study and tracking tests (no DATA_DIR needed)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

WORDS = {"negative": ["buruk", "kecewa", "mahal", "lambat", "jelek", "kotor"],
         "neutral": ["jadwal", "tiket", "alamat", "kantor", "informasi", "nomor"],
         "positive": ["bagus", "enak", "senang", "mantap", "puas", "ramah"]}
FILLER = ["saya", "makanan", "tempat", "pelayanan", "ini", "sangat", "di", "dan", "hotel", "harga"]


def write_tiny_nusax(root: Path, sizes=(("train", 36), ("valid", 12), ("test", 12))) -> Path:
    """``root/nusax-sentiment/indonesian/{split}.csv``: short texts, each class marked by its own words."""
    rng = np.random.default_rng(20)
    folder = root / "nusax-sentiment" / "indonesian"
    folder.mkdir(parents=True)
    for split, n in sizes:
        with open(folder / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["id", "text", "label"])
            for i in range(n):
                label = list(WORDS)[i % 3]
                words = list(rng.choice(FILLER, 5)) + list(rng.choice(WORDS[label], 2))
                rng.shuffle(words)
                writer.writerow([i, " ".join(words), label])
    return root
