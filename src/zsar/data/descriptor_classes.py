"""The classes descriptors are imported for, and exported with: a label list in any style
`read_class_list` reads, or a workflow classes.parquet, as raw names, display names and (for
files keyed by class index) the class order."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from zsar.data.adapters import AnnotationError, read_class_list, words_display_name
from zsar.data.descriptor_formats import DescriptorFileError
from zsar.data.limits import FileTooLarge, check_file_size


@dataclass(frozen=True)
class LabelClasses:
    """The classes descriptors are imported for."""

    names: list[str]  # raw names, distinct: the keys of the output
    displays: list[str]  # display names, for matching and templates
    origin: str  # the label file, for messages
    # Raw names by class index, for index-keyed files; None when there is no single order
    # (a classes.parquet whose splits list different classes), with the reason.
    index_order: list[str] | None = None
    no_order_reason: str | None = None

    @property
    def display(self) -> dict[str, str]:
        return dict(zip(self.names, self.displays, strict=True))


def classes_from_rows(rows: Iterable[Mapping[str, Any]], origin: str) -> LabelClasses:
    """LabelClasses from classes.parquet rows {split, class_id, name, display_name}."""
    rows = sorted(rows, key=lambda r: (r["split"], r["class_id"]))
    displays: dict[str, str] = {}
    per_split: dict[int, list[str]] = {}
    for row in rows:
        displays.setdefault(row["name"], row["display_name"] or row["name"])
        per_split.setdefault(row["split"], []).append(row["name"])
    orders = list(per_split.values())
    same = all(order == orders[0] for order in orders)
    reason = None if same else (f"{origin} has {len(orders)} splits with different class lists "
                                "(pass the label file of the split instead)")
    return LabelClasses(list(displays), list(displays.values()), origin,
                        index_order=orders[0] if same and orders else None,
                        no_order_reason=reason)


def classes_from_list(names: Sequence[str], origin: str) -> LabelClasses:
    distinct = list(dict.fromkeys(names))
    return LabelClasses(distinct, [words_display_name(n) for n in distinct], origin,
                        index_order=list(names))


def read_label_classes(path: str | Path) -> LabelClasses:
    """A label list in any style `read_class_list` reads, or a workflow classes.parquet."""
    path = Path(path)
    if path.is_dir():
        raise DescriptorFileError(f"{path}: is a folder, expected a label file")
    if not path.is_file():
        raise DescriptorFileError(f"{path}: no such file")
    if path.suffix == ".parquet":
        try:
            check_file_size(path, "label")
        except FileTooLarge as err:
            raise DescriptorFileError(str(err)) from None
        try:
            table = pq.read_table(path)
        except Exception as err:  # noqa: BLE001 - any unreadable Parquet is the same user error
            raise DescriptorFileError(f"{path}: not a Parquet file ({err})") from None
        missing = {"split", "class_id", "name", "display_name"} - set(table.column_names)
        if missing:
            raise DescriptorFileError(f"{path}: not a classes.parquet; missing {sorted(missing)}")
        if table.num_rows == 0:
            raise DescriptorFileError(f"{path}: no classes")
        return classes_from_rows(table.to_pylist(), str(path))
    try:
        return classes_from_list(read_class_list(path), str(path))
    except AnnotationError as err:
        raise DescriptorFileError(str(err)) from None

