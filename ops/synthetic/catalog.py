"""What synthetic rooms are made of: colours, the ScanNet categories used and their label-map rows.

The furniture's shapes are ``ops.synthetic.furniture`` (built from ``ops.synthetic.parts``); ``build_furniture``
draws an instance's colour here and its shape there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ops.synthetic.furniture import build_shape
from ops.synthetic.parts import Furniture

# Named colours used for both the mesh and the annotations ("the red chair").
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (178, 42, 40),
    "brown": (122, 82, 48),
    "black": (38, 38, 42),
    "white": (232, 232, 226),
    "blue": (48, 82, 168),
    "green": (52, 128, 62),
    "gray": (128, 128, 132),
    "yellow": (222, 188, 52),
    "beige": (214, 194, 158),
    "orange": (222, 122, 42),
    "purple": (112, 62, 142),
    "pink": (222, 142, 172),
}

# The room shell uses lighter shades of the same colour names (painted walls, wooden or tiled floors).
WALL_PALETTE: dict[str, tuple[int, int, int]] = {
    "white": (228, 226, 220),
    "beige": (222, 208, 180),
    "gray": (188, 188, 190),
}
FLOOR_PALETTE: dict[str, tuple[int, int, int]] = {
    "brown": (150, 108, 70),
    "gray": (150, 150, 152),
    "beige": (196, 176, 140),
}

# Rows of ScanNet's scannetv2-labels.combined.tsv for every raw category the generator uses, verbatim
# (17 tab-separated columns, see ops.scannet.writers.LABEL_TSV_COLUMNS).
LABEL_TSV_ROWS: dict[str, str] = {
    "wall": "1\twall\twall\t8277\t1\t12\twall\twall\tWall\t\t\t\t\tn04546855\twall.n.01\twall\t1",
    "floor": "3\tfloor\tfloor\t1553\t2\t5\tfloor\tfloor\tFloor\t\t\t\t\tn03365592\tfloor.n.01\tfloor\t2",
    "chair": "2\tchair\tchair\t4646\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t3001627\tn03001627\tchair.n.01"
    "\tchair\t3",
    "office chair": "10\toffice chair\toffice chair\t595\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t3001627"
    "\tn04373704\tswivel_chair.n.01\tchair\t3",
    "armchair": "23\tarmchair\tarmchair\t281\t5\t4\tchair\tchair\tChair\tchair\tchair\tchair\t3001627\tn02738535"
    "\tarmchair.n.01\tchair\t3",
    "table": "4\ttable\ttable\t1170\t7\t10\ttable\ttable\tTable\ttable\ttable\ttable\t4379243\tn04379243\ttable.n.02"
    "\ttable\t5",
    "coffee table": "24\tcoffee table\tcoffee table\t258\t7\t10\tcoffee table\ttable\tTable\ttable\ttable\ttable"
    "\t4379243\tn03063968\tcoffee_table.n.01\ttable\t5",
    "end table": "44\tend table\tend table\t147\t7\t10\ttable\ttable\tTable\ttable\ttable\ttable\t4379243\tn04379243"
    "\ttable.n.02\ttable\t5",
    "desk": "9\tdesk\tdesk\t680\t14\t10\tdesk\tdesk\tTable\tdesk\tdesk\ttable\t4379243\tn03179701\tdesk.n.01\ttable\t5",
    "couch": "6\tcouch\tcouch\t502\t6\t9\tsofa\tsofa\tSofa\tsofa\tsofa\tsofa\t4256520\tn04256520\tsofa.n.01\tsofa\t10",
    "bed": "11\tbed\tbed\t370\t4\t1\tbed\tbed\tBed\tbed\tbed\tbed\t2818832\tn02818832\tbed.n.01\tbed\t11",
    "nightstand": "34\tnightstand\tnightstand\t224\t32\t6\tnight stand\tnight stand\tFurniture\tnight_stand"
    "\tnight_stand\t\t\tn03015254\tchest_of_drawers.n.01\tchest_of_drawers\t13",
    "dresser": "36\tdresser\tdresser\t213\t17\t6\tdresser\tdresser\tFurniture\tdresser\tdresser\t\t\tn03015254"
    "\tchest_of_drawers.n.01\tchest_of_drawers\t13",
    "cabinet": "7\tcabinet\tcabinet\t731\t3\t6\tcabinet\tcabinet\tFurniture\t\t\tcabinet\t2933112\tn02933112"
    "\tcabinet.n.01\tcabinet\t7",
    "kitchen cabinets": "29\tkitchen cabinets\tkitchen cabinet\t289\t3\t6\tcabinet\tcabinet\tFurniture\t\t"
    "\tcabinet\t2933112\tn02933112\tcabinet.n.01\tcabinet\t7",
    "bookshelf": "18\tbookshelf\tbookshelf\t360\t10\t6\tbookshelf\tbookshelf\tFurniture\tbookshelf\t\tbookshelf"
    "\t2871439\tn02871439\tbookshelf.n.01\tshelving\t31",
    "refrigerator": "27\trefrigerator\trefrigerator\t154\t24\t6\trefrigerator\trefrigerator\tFurniture\t\t\t\t"
    "\tn04070727\trefrigerator.n.01\tappliances\t37",
    "toilet": "17\ttoilet\ttoilet\t256\t33\t7\ttoilet\ttoilet\tObjects\ttoilet\ttoilet\t\t\tn04446276\ttoilet.n.01"
    "\ttoilet\t18",
    "sink": "14\tsink\tsink\t488\t34\t7\tsink\tsink\tObjects\tsink\t\t\t\tn04223580\tsink.n.01\tsink\t15",
    "bathtub": "42\tbathtub\tbathtub\t144\t36\t7\tbathtub\tbathtub\tObjects\tbathtub\tbathtub\ttub\t2808440"
    "\tn02808440\tbathtub.n.01\tbathtub\t25",
    "monitor": "19\tmonitor\tmonitor\t765\t40\t7\tmonitor\totherprop\tObjects\tmonitor\tmonitor\ttv or monitor"
    "\t3211117\tn03782190\tmonitor.n.04\tobjects\t39",
    "tv": "33\ttv\ttv\t219\t25\t11\ttelevision\ttelevision\tTV\t\t\ttv or monitor\t3211117\tn03211117\tdisplay.n.06"
    "\ttv_monitor\t22",
    "lamp": "28\tlamp\tlamp\t419\t35\t7\tlamp\tlamp\tObjects\tlamp\t\tlamp\t3636649\tn03636649\tlamp.n.02"
    "\tlighting\t28",
    "trash can": "56\ttrash can\ttrash can\t1090\t39\t6\tgarbage bin\totherfurniture\tFurniture\t\t\ttrash_bin"
    "\t2747177\tn02747177\tashcan.n.01\tobjects\t39",
    "pillow": "13\tpillow\tpillow\t937\t18\t7\tpillow\tpillow\tObjects\t\t\tpillow\t3938244\tn03938244\tpillow.n.01"
    "\tcushion\t8",
    "picture": "15\tpicture\tpicture\t862\t11\t8\tpicture\tpicture\tPicture\t\t\t\t\tn03931044\tpicture.n.01"
    "\tpicture\t6",
    "mirror": "71\tmirror\tmirror\t349\t19\t7\tmirror\tmirror\tObjects\t\t\t\t\tn03773035\tmirror.n.01\tmirror\t21",
    "door": "5\tdoor\tdoor\t1483\t8\t12\tdoor\tdoor\tWall\tdoor\t\t\t\tn03221720\tdoor.n.01\tdoor\t4",
}


def nyu40_id(label: str) -> int:
    """The NYU40 class id of a raw ScanNet category used here."""
    return int(LABEL_TSV_ROWS[label].split("\t")[4])


@dataclass(frozen=True)
class Category:
    """A raw ScanNet category and the colours an instance may take (its shape: ``ops.synthetic.furniture``)."""

    label: str
    colors: tuple[str, ...]


CATEGORIES: dict[str, Category] = {
    c.label: c
    for c in (
        Category("chair", ("red", "brown", "black", "blue", "green", "gray", "white")),
        Category("office chair", ("black", "blue", "gray", "red")),
        Category("armchair", ("red", "brown", "beige", "blue", "green", "gray")),
        Category("couch", ("brown", "gray", "blue", "red", "beige", "black", "green")),
        Category("table", ("brown", "white", "black", "gray")),
        Category("coffee table", ("brown", "black", "white")),
        Category("end table", ("brown", "white", "black")),
        Category("desk", ("brown", "white", "black", "gray")),
        Category("bed", ("brown", "white", "black", "gray", "blue")),
        Category("nightstand", ("brown", "white", "black")),
        Category("dresser", ("brown", "white", "black")),
        Category("cabinet", ("brown", "white", "gray", "black", "blue")),
        Category("kitchen cabinets", ("white", "brown", "gray", "blue")),
        Category("bookshelf", ("brown", "white", "black")),
        Category("refrigerator", ("white", "gray", "black")),
        Category("toilet", ("white",)),
        Category("sink", ("white", "gray")),
        Category("bathtub", ("white",)),
        Category("monitor", ("black", "gray", "white")),
        Category("tv", ("black", "gray")),
        Category("lamp", ("white", "beige", "black", "yellow", "red")),
        Category("trash can", ("gray", "black", "blue", "green", "white")),
        Category("pillow", ("red", "blue", "white", "yellow", "green", "beige", "purple", "orange")),
        Category("picture", ("red", "blue", "green", "yellow", "orange", "purple")),
        Category("mirror", ("gray",)),
        Category("door", ("brown", "white")),
    )
}


def build_furniture(label: str, rng: np.random.Generator, variant: str = "") -> Furniture:
    """Draw a colour and dimensions for one ``label``; ``variant`` picks e.g. a floor lamp or a counter sink."""
    category = CATEGORIES[label]
    color = str(rng.choice(category.colors))
    return build_shape(label, rng, color, variant)
