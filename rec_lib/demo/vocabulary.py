"""The demo shop's worlds and words: the regimes (where taste shows), and per category the nouns,
styles with their adjectives and phrases, brands and price medians, the attribute values and the
users' countries and age bands (rec_lib.demo.generator draws the shop from them; the Chinese lists
are in rec_lib.demo.chinese, parallel to these).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict


@dataclass(frozen=True)
class Regime:
    """Where a world's taste shows (see the module doc)."""

    beta: float  # weight of taste match against popularity in the affinity
    popularity_scale: float
    informative_text: bool  # titles and descriptions quote the style
    attribute_weight: float  # weight of the attribute values' vectors in an item's vector
    style_attributes: bool  # attribute values are drawn by style (else regardless of it)


REGIMES: Dict[str, Regime] = {
    "text": Regime(beta=4.0, popularity_scale=1.0, informative_text=True, attribute_weight=0.25,
                   style_attributes=False),
    "attributes": Regime(beta=4.0, popularity_scale=1.0, informative_text=False, attribute_weight=0.8,
                         style_attributes=True),
    "popularity": Regime(beta=1.5, popularity_scale=2.0, informative_text=True, attribute_weight=0.25,
                         style_attributes=False),
}
BETA = REGIMES["text"].beta  # the default world's taste weight

# category -> (nouns, {style: (adjectives, phrases)}, category phrases, brands, price median)
CATALOGUE_VOCABULARY: Dict[str, tuple] = {
    "electronics": (
        ["headphones", "speaker", "keyboard", "mouse", "monitor", "charger", "webcam", "router"],
        {
            "gaming": (["rgb", "gaming", "mechanical", "esports"],
                       ["built for long gaming sessions", "low latency for competitive play",
                        "customisable rgb lighting", "high refresh rate for fast shooters"]),
            "audio": (["wireless", "noise-cancelling", "hi-fi", "bluetooth"],
                      ["deep bass and clear highs", "active noise cancelling for commuting",
                       "studio quality sound", "thirty hours of battery for music lovers"]),
            "smart home": (["smart", "wifi", "voice-controlled", "connected"],
                           ["works with your voice assistant", "control it from your phone app",
                            "automate your home routines", "energy saving schedules"]),
        },
        ["usb-c connection", "two year warranty", "compact design"],
        ["Voltix", "Nexora", "Soundwave", "Pixelcore", "Ampliq"], 80.0,
    ),
    "books": (
        ["novel", "cookbook", "guide", "anthology", "biography", "handbook"],
        {
            "crime": (["gripping", "dark", "noir", "suspenseful"],
                      ["a detective hunts a killer", "twists until the last page",
                       "a murder in a quiet village", "a thriller you cannot put down"]),
            "science": (["illustrated", "popular science", "astronomy", "evolutionary"],
                        ["explains the universe in plain words", "from black holes to quantum physics",
                         "the story of evolution and genes", "written by a leading scientist"]),
            "children": (["picture", "bedtime", "illustrated kids", "rhyming"],
                         ["colourful pictures for young readers", "a bedtime story for ages three to six",
                          "funny animals learn to share", "perfect for reading aloud"]),
        },
        ["paperback edition", "bestseller", "new translation"],
        ["Penfold Press", "Inkwell", "Marlow Books", "Bright Page"], 15.0,
    ),
    "kitchen": (
        ["pan", "knife set", "blender", "kettle", "coffee grinder", "baking tray", "pot"],
        {
            "baking": (["nonstick", "silicone", "professional baking", "springform"],
                       ["bake perfect cakes and bread", "even heat for pastry",
                        "easy release for muffins", "for home bakers"]),
            "coffee": (["espresso", "burr", "barista", "pour-over"],
                       ["grind fresh beans every morning", "rich crema like a cafe",
                        "precise brewing temperature", "for coffee lovers"]),
            "cookware": (["cast iron", "stainless steel", "induction", "copper"],
                         ["sear steak and roast vegetables", "works on every hob including induction",
                          "oven safe to high temperature", "heavy base for slow cooking"]),
        },
        ["dishwasher safe", "easy to clean", "gift boxed"],
        ["Cucina", "Ovenly", "Brewmaster", "Forgeware", "Kitchenly"], 45.0,
    ),
    "sports": (
        ["shoes", "jacket", "mat", "bottle", "backpack", "watch", "shorts"],
        {
            "running": (["lightweight running", "breathable", "marathon", "trail"],
                        ["cushioned for long distance runs", "grip on muddy trails",
                         "track your pace and heart rate", "reflective for night runs"]),
            "yoga": (["yoga", "eco cork", "stretch", "pilates"],
                     ["non slip surface for every pose", "supports your balance and breathing",
                      "soft and flexible for stretching", "for mindful practice"]),
            "outdoor": (["waterproof", "hiking", "insulated", "alpine"],
                        ["stays dry in heavy rain", "warm on cold mountain hikes",
                         "rugged for camping trips", "packs small for the trail"]),
        },
        ["sweat resistant", "unisex fit", "machine washable"],
        ["Stridex", "Peakline", "Zenflow", "Trailborn", "Kinetiq"], 60.0,
    ),
    "beauty": (
        ["serum", "cream", "lipstick", "shampoo", "face mask", "perfume"],
        {
            "skincare": (["hydrating", "vitamin c", "retinol", "gentle"],
                         ["reduces fine lines overnight", "hydrates dry and sensitive skin",
                          "brightens dull complexion", "dermatologist tested"]),
            "makeup": (["matte", "long-lasting", "shimmer", "velvet"],
                       ["bold colour that lasts all day", "smudge proof finish",
                        "blends easily for a natural look", "for evening glamour"]),
            "haircare": (["repairing", "volumising", "argan oil", "curl defining"],
                         ["repairs damaged and coloured hair", "adds volume to fine hair",
                          "tames frizz and defines curls", "salon results at home"]),
        },
        ["cruelty free", "vegan formula", "travel size"],
        ["Lumiere", "Bellis", "Aurea", "Glowlab"], 25.0,
    ),
    "toys": (
        ["puzzle", "building set", "doll", "board game", "robot", "plush"],
        {
            "educational": (["stem", "coding", "science kit", "math"],
                            ["teaches coding through play", "experiments for curious kids",
                             "builds logic and problem solving", "learn numbers with fun"]),
            "creative": (["craft", "painting", "modelling clay", "bead"],
                         ["make your own jewellery", "paint and decorate at home",
                          "hours of creative play", "for little artists"]),
            "party": (["family", "party", "card", "strategy"],
                      ["game night for the whole family", "quick rounds full of laughter",
                       "plan your strategy to win", "for two to six players"]),
        },
        ["ages six and up", "safety tested", "batteries included"],
        ["Playnest", "Brickly", "Wonderbox", "Tinytown"], 30.0,
    ),
    "garden": (
        ["hose", "planter", "seed kit", "pruner", "lamp", "bird feeder"],
        {
            "vegetables": (["organic", "heirloom", "vegetable", "herb"],
                           ["grow your own tomatoes and herbs", "harvest fresh salad all summer",
                            "organic seeds for raised beds", "for kitchen gardeners"]),
            "decor": (["solar", "ceramic", "rustic", "lantern"],
                      ["lights up the patio at night", "rustic charm for your terrace",
                       "weatherproof decoration", "cosy evenings outside"]),
            "tools": (["heavy duty", "ergonomic", "telescopic", "steel"],
                      ["cuts thick branches with ease", "comfortable grip for long jobs",
                       "reaches high hedges", "built to last for years"]),
        },
        ["frost resistant", "easy assembly", "uv stable"],
        ["Greenthumb", "Bloomfield", "Rootwise", "Terrace & Co"], 35.0,
    ),
    "fashion": (
        ["dress", "sneakers", "scarf", "handbag", "sunglasses", "coat", "jeans"],
        {
            "streetwear": (["oversized", "graphic", "urban", "retro"],
                           ["bold look for the city", "inspired by skate culture",
                            "relaxed fit for everyday", "limited drop design"]),
            "formal": (["tailored", "silk", "classic", "slim fit"],
                       ["elegant for the office and weddings", "timeless cut",
                        "fine fabric with a sharp finish", "for special occasions"]),
            "summer": (["linen", "floral", "beach", "lightweight summer"],
                       ["cool and airy on hot days", "bright prints for holidays",
                        "perfect for the beach", "packs easily for travel"]),
        },
        ["sustainably made", "true to size", "free returns"],
        ["Maison Rue", "Urbane", "Sunday Studio", "Norththread", "Vela"], 55.0,
    ),
}
# A few titles in Chinese, so the pipeline meets non-Latin text as real shops do.
CHINESE_NOUNS = {"electronics": "无线耳机", "books": "小说", "kitchen": "不粘锅", "sports": "跑步鞋",
                 "beauty": "精华液", "toys": "拼图", "garden": "花盆", "fashion": "连衣裙"}
GENERIC_PHRASES = ["a customer favourite", "great value", "new this season", "ships in two days"]
MATERIALS = {
    "electronics": ["aluminium", "plastic", "glass", "rubber", "steel", "fabric"],
    "books": ["paper", "hardcover", "cloth", "recycled paper", "board", "leather"],
    "kitchen": ["steel", "cast iron", "ceramic", "wood", "silicone", "copper"],
    "sports": ["mesh", "nylon", "cork", "rubber", "merino", "polyester"],
    "beauty": ["glass", "aluminium", "bamboo", "plastic", "paper", "ceramic"],
    "toys": ["wood", "plastic", "plush", "cardboard", "felt", "rubber"],
    "garden": ["steel", "terracotta", "wood", "plastic", "ceramic", "rattan"],
    "fashion": ["cotton", "linen", "silk", "denim", "wool", "leather"],
}
COLOURS = ["black", "white", "red", "blue", "green", "grey", "beige", "pink"]
YEARS = (2019, 2026)  # model years, newer ones a little more popular
COUNTRIES = ["DE", "FR", "GB", "NL", "ES", "IT", "PL", "SE"]
AGE_BANDS = ["18-24", "25-34", "35-44", "45-54", "55+"]
