"""Dataset adapters: every format, official and list, read from small files written here."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zsar.data import adapters
from zsar.data.adapters import AnnotationError, check_annotations, read_class_list, read_split

NEWLINES = {"lf": "\n", "crlf": "\r\n"}


def write_lines(path: Path, lines: list[str], newline: str = "\n", bom: bool = False) -> Path:
    """Write text bytes exactly (no platform newline translation)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + data.encode())
    return path


@pytest.fixture(params=sorted(NEWLINES))
def nl(request) -> str:
    return NEWLINES[request.param]


# ---------------------------------------------------------------------------------------
# Registry


def test_registry_has_every_benchmark_adapter():
    assert set(adapters.ADAPTERS) == {
        "ucf101", "hmdb51", "kinetics", "k600_zs", "k600_open_vclip", "ssv2", "folder", "demo"
    }
    for name, adapter in adapters.ADAPTERS.items():
        assert adapter.name == name
        assert adapter.formats, name


def test_unknown_adapter_and_format_are_named(tmp_path):
    path = write_lines(tmp_path / "a.txt", ["x.mp4 0"])
    with pytest.raises(AnnotationError, match="unknown adapter 'nope'.*ucf101"):
        check_annotations("nope", path)
    with pytest.raises(AnnotationError, match="no format 'deepmind'"):
        check_annotations("ucf101", path, labels=path, fmt="deepmind")


# ---------------------------------------------------------------------------------------
# Display names


@pytest.mark.parametrize(
    "adapter, raw, display",
    [
        ("ucf101", "ApplyEyeMakeup", "apply eye makeup"),
        ("ucf101", "YoYo", "yo yo"),
        ("ucf101", "HandstandPushups", "handstand pushups"),
        ("hmdb51", "brush_hair", "brush hair"),
        ("hmdb51", "brush hair", "brush hair"),
        ("ssv2", "Pushing [something] from left to right", "pushing something from left to right"),
        ("ssv2", "Putting something, something and something on the table",
         "putting something, something and something on the table"),
        ("kinetics", "passing American football (in game)", "passing American football (in game)"),
        ("kinetics", '"abseiling"', "abseiling"),
        ("k600_zs", "wood burning (art)", "wood burning (art)"),
        ("folder", "Sliding_Square", "sliding square"),
    ],
)
def test_display_names(adapter, raw, display):
    assert adapters.ADAPTERS[adapter].display_name(raw) == display


# ---------------------------------------------------------------------------------------
# Class lists


def test_class_list_styles(tmp_path, nl):
    rows = ["id,name", "1,b", "0,a", "", '2,"c, d"']
    csv_path = write_lines(tmp_path / "l.csv", rows, nl, bom=True)
    assert read_class_list(csv_path) == ["a", "b", "c, d"]
    ind = write_lines(tmp_path / "classInd.txt", ["1 ApplyEyeMakeup", "2 YoYo"], nl, True)
    assert read_class_list(ind) == ["ApplyEyeMakeup", "YoYo"]
    names = write_lines(tmp_path / "map.txt", ["air drumming", "", "abseiling"], nl)
    assert read_class_list(names) == ["air drumming", "abseiling"]
    labels_json = tmp_path / "labels.json"
    labels_json.write_text(json.dumps({"Pushing something": "1", "Holding something": "0"}))
    assert read_class_list(labels_json) == ["Holding something", "Pushing something"]


def test_class_list_with_a_gap_in_ids_names_the_file(tmp_path):
    path = write_lines(tmp_path / "l.csv", ["id,name", "0,a", "2,c"])
    with pytest.raises(AnnotationError, match=r"l\.csv.*missing \[1\]"):
        read_class_list(path)


def test_class_list_bad_row_names_file_and_line(tmp_path):
    path = write_lines(tmp_path / "l.csv", ["id,name", "0,a", "", "x,b"])
    with pytest.raises(AnnotationError, match=r"l\.csv:4: expected `id,name`"):
        read_class_list(path)


# ---------------------------------------------------------------------------------------
# "path label" lists (UCF101, HMDB51, Kinetics, K600 ZS, SSv2, demo)


@pytest.mark.parametrize("adapter", ["ucf101", "hmdb51", "kinetics", "k600_zs", "ssv2", "demo"])
def test_path_label_list(tmp_path, nl, adapter):
    rows = ["id,name", "0,first_one", "1,SecondOne"]
    labels = write_lines(tmp_path / "labels.csv", rows, nl, bom=True)
    ann = write_lines(
        tmp_path / "list.txt", ["", "sub/b.mp4 1", "a.mp4 0", "", "with space.mp4 1"], nl, True
    )
    check_annotations(adapter, ann, labels)
    parsed = read_split(adapter, ann, labels)
    assert parsed.format == "list"
    assert parsed.classes == ["first_one", "SecondOne"]
    assert [(v.video_id, v.label, v.class_id, v.line) for v in parsed.videos] == [
        ("sub/b.mp4", "SecondOne", 1, 2),
        ("a.mp4", "first_one", 0, 3),
        ("with space.mp4", "SecondOne", 1, 5),
    ]


def test_list_label_out_of_range_names_file_and_line(tmp_path, nl):
    labels = write_lines(tmp_path / "labels.csv", ["id,name", "0,a", "1,b"], nl)
    ann = write_lines(tmp_path / "list.txt", ["a.mp4 0", "", "b.mp4 2"], nl)
    with pytest.raises(AnnotationError, match=r"list\.txt:3: label 2 is outside 0\.\.1"):
        read_split("k600_zs", ann, labels)


def test_list_needs_labels(tmp_path):
    ann = write_lines(tmp_path / "list.txt", ["a.mp4 0"])
    with pytest.raises(AnnotationError, match="needs a class list"):
        check_annotations("demo", ann)
    with pytest.raises(AnnotationError, match="needs a class list"):
        read_split("demo", ann)


def test_duplicate_video_names_both_lines(tmp_path):
    labels = write_lines(tmp_path / "labels.csv", ["id,name", "0,a"])
    ann = write_lines(tmp_path / "list.txt", ["a.mp4 0", "b.mp4 0", "a.mp4 0"])
    with pytest.raises(AnnotationError, match=r"list\.txt:3: video 'a\.mp4' is listed twice"
                                              r" \(first at line 1\)"):
        read_split("demo", ann, labels)


def test_wrong_format_names_file_and_line(tmp_path, nl):
    labels = write_lines(tmp_path / "labels.csv", ["id,name", "0,a"], nl)
    ann = write_lines(tmp_path / "list.txt", ["a.mp4 0", "b.mp4 0", "c.mp4 zero"], nl)
    with pytest.raises(AnnotationError) as err:
        check_annotations("k600_zs", ann, labels)
    assert str(ann) in str(err.value)
    assert "line 3" in str(err.value) and "`relative/path label`" in str(err.value)


def test_wrong_class_list_is_caught_by_the_sniff(tmp_path):
    labels = write_lines(tmp_path / "labels.csv", ["id,name", "0,a", "b"])
    ann = write_lines(tmp_path / "list.txt", ["a.mp4 0"])
    with pytest.raises(AnnotationError, match=r"labels\.csv: line 3"):
        check_annotations("demo", ann, labels)


def test_not_utf8_is_an_annotation_error(tmp_path):
    ann = tmp_path / "list.txt"
    ann.write_bytes(b"caf\xe9.mp4 0\n")
    with pytest.raises(AnnotationError, match="not UTF-8"):
        check_annotations("demo", ann, ann)


# ---------------------------------------------------------------------------------------
# UCF101 official


def ucf_class_ind(tmp_path: Path, nl: str) -> Path:
    return write_lines(
        tmp_path / "classInd.txt", ["1 ApplyEyeMakeup", "2 HandstandPushups", "3 YoYo"], nl, True
    )


def test_ucf101_official_testlist(tmp_path, nl):
    class_ind = ucf_class_ind(tmp_path, nl)
    ann = write_lines(
        tmp_path / "testlist01.txt",
        [
            "YoYo/v_YoYo_g01_c01.avi",
            "",
            "HandstandPushups/v_HandStandPushups_g01_c01.avi",
            "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi",
        ],
        nl,
    )
    check_annotations("ucf101", ann, class_ind)
    parsed = read_split("ucf101", ann, class_ind)
    assert parsed.format == "official"
    assert parsed.classes == ["ApplyEyeMakeup", "HandstandPushups", "YoYo"]
    assert [(v.video_id, v.label, v.class_id) for v in parsed.videos] == [
        ("YoYo/v_YoYo_g01_c01.avi", "YoYo", 2),
        ("HandstandPushups/v_HandStandPushups_g01_c01.avi", "HandstandPushups", 1),
        ("ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c01.avi", "ApplyEyeMakeup", 0),
    ]


def test_ucf101_official_with_a_name_per_line_map(tmp_path, nl):
    names = write_lines(tmp_path / "map.txt", ["ApplyEyeMakeup", "HandstandPushups", "YoYo"], nl)
    ann = write_lines(tmp_path / "testlist01.txt", ["YoYo/v_YoYo_g01_c01.avi"], nl)
    assert [v.class_id for v in read_split("ucf101", ann, names).videos] == [2]


def test_ucf101_official_trainlist_is_one_based(tmp_path, nl):
    class_ind = ucf_class_ind(tmp_path, nl)
    ann = write_lines(
        tmp_path / "trainlist01.txt",
        ["ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1", "YoYo/v_YoYo_g25_c05.avi 3"],
        nl,
    )
    parsed = read_split("ucf101", ann, class_ind)
    assert parsed.format == "official"
    assert [v.class_id for v in parsed.videos] == [0, 2]


def test_ucf101_trainlist_label_disagreeing_with_folder(tmp_path, nl):
    class_ind = ucf_class_ind(tmp_path, nl)
    ann = write_lines(tmp_path / "trainlist01.txt", ["", "YoYo/v_YoYo_g25_c05.avi 1"], nl)
    with pytest.raises(AnnotationError, match=r"trainlist01\.txt:2: label 1 .* disagrees"):
        read_split("ucf101", ann, class_ind)


def test_ucf101_unknown_class_folder(tmp_path, nl):
    class_ind = ucf_class_ind(tmp_path, nl)
    ann = write_lines(tmp_path / "testlist01.txt", ["Archery/v_Archery_g01_c01.avi"], nl)
    with pytest.raises(AnnotationError, match=r"testlist01\.txt:1: class folder 'Archery'"):
        read_split("ucf101", ann, class_ind)


def test_ucf101_forced_format_is_checked(tmp_path, nl):
    class_ind = ucf_class_ind(tmp_path, nl)
    ann = write_lines(tmp_path / "list.txt", ["v_YoYo_g01_c01.avi 2"], nl)
    assert read_split("ucf101", ann, class_ind).format == "list"
    with pytest.raises(AnnotationError, match=r"as official .*line 1: expected `Class/"):
        check_annotations("ucf101", ann, class_ind, fmt="official")


# ---------------------------------------------------------------------------------------
# HMDB51 official


def hmdb_folder(tmp_path: Path, nl: str) -> Path:
    folder = tmp_path / "testTrainMulti_7030_splits"
    # The official files end each line with a space.
    write_lines(folder / "brush_hair_test_split1.txt",
                ["a_brush_hair_0.avi 1 ", "b_brush_hair_0.avi 2 "], nl)
    write_lines(folder / "brush_hair_test_split2.txt",
                ["a_brush_hair_0.avi 2", "b_brush_hair_0.avi 1"], nl)
    write_lines(folder / "cartwheel_test_split1.txt",
                ["c_cartwheel_0.avi 0", "", "d_cartwheel_1.avi 2", "e_cartwheel_2.avi 2"], nl, True)
    write_lines(folder / "cartwheel_test_split2.txt", ["c_cartwheel_0.avi 2"], nl)
    return folder


def test_hmdb51_official_keeps_flag_2(tmp_path, nl):
    folder = hmdb_folder(tmp_path, nl)
    check_annotations("hmdb51", folder)
    split1 = read_split("hmdb51", folder, None, split=1)
    assert split1.format == "official"
    # The label files' spelling (ViFi-CLIP's and Open-VCLIP's), not the file names'.
    assert split1.classes == ["brush hair", "cartwheel"]
    assert [(v.video_id, v.class_id) for v in split1.videos] == [
        ("brush_hair/b_brush_hair_0.avi", 0),
        ("cartwheel/d_cartwheel_1.avi", 1),
        ("cartwheel/e_cartwheel_2.avi", 1),
    ]
    split2 = read_split("hmdb51", folder, None, split=2)
    assert [v.video_id for v in split2.videos] == [
        "brush_hair/a_brush_hair_0.avi", "cartwheel/c_cartwheel_0.avi"
    ]


def test_hmdb51_official_with_vificlip_style_labels(tmp_path, nl):
    folder = hmdb_folder(tmp_path, nl)
    # Class order from the CSV, names with spaces matched to the file names' underscores.
    labels = write_lines(tmp_path / "hmdb.csv", ["id,name", "0,cartwheel", "1,brush hair"], nl)
    parsed = read_split("hmdb51", folder, labels, split=1)
    assert parsed.classes == ["cartwheel", "brush hair"]
    assert [(v.label, v.class_id) for v in parsed.videos] == [
        ("brush hair", 1), ("cartwheel", 0), ("cartwheel", 0)
    ]


def test_hmdb51_official_bad_flag_names_file_and_line(tmp_path, nl):
    folder = hmdb_folder(tmp_path, nl)
    write_lines(folder / "cartwheel_test_split3.txt", ["c_cartwheel_0.avi 2", "", "x.avi 7"], nl)
    with pytest.raises(AnnotationError, match=r"cartwheel_test_split3\.txt:3: expected"):
        read_split("hmdb51", folder, None, split=3)
    with pytest.raises(AnnotationError, match=r"no `<class>_test_split4\.txt` files"):
        read_split("hmdb51", folder, None, split=4)


def test_hmdb51_list_file_is_not_official(tmp_path, nl):
    labels = write_lines(tmp_path / "hmdb.csv", ["id,name", "0,brush hair"], nl)
    ann = write_lines(tmp_path / "hmdb_splits_val1.txt", ["x_brush_hair_u_nm_np1_med_3.avi 0"], nl)
    parsed = read_split("hmdb51", ann, labels)
    assert parsed.format == "list"
    assert parsed.videos[0].video_id == "x_brush_hair_u_nm_np1_med_3.avi"


# ---------------------------------------------------------------------------------------
# Kinetics official (DeepMind CSV)


@pytest.mark.parametrize("is_cc", [False, True])
def test_kinetics_deepmind_csv(tmp_path, nl, is_cc):
    header = "label,youtube_id,time_start,time_end,split" + (",is_cc" if is_cc else "")
    extra = ",0" if is_cc else ""
    ann = write_lines(
        tmp_path / "validate.csv",
        [
            header,
            f"zumba,abc-_12345,14,24,val{extra}",
            "",
            f'"passing American football (in game)",xyz,0.0,10,val{extra}',
            f"abseiling,0wR5jVB-WPk,417,427,val{extra}",
        ],
        nl,
        bom=True,
    )
    check_annotations("kinetics", ann)
    parsed = read_split("kinetics", ann)
    assert parsed.format == "deepmind"
    # Without a class list, classes are the sorted names.
    assert parsed.classes == ["abseiling", "passing American football (in game)", "zumba"]
    assert [(v.video_id, v.label, v.class_id, v.line) for v in parsed.videos] == [
        ("abc-_12345_000014_000024.mp4", "zumba", 2, 2),
        ("xyz_000000_000010.mp4", "passing American football (in game)", 1, 4),
        ("0wR5jVB-WPk_000417_000427.mp4", "abseiling", 0, 5),
    ]


def test_kinetics_deepmind_csv_with_class_list_and_errors(tmp_path, nl):
    labels = write_lines(tmp_path / "k.csv", ["id,name", "0,zumba", "1,abseiling"], nl)
    ann = write_lines(
        tmp_path / "validate.csv",
        ["label,youtube_id,time_start,time_end,split", "abseiling,a,1,11,val"], nl,
    )
    assert [v.class_id for v in read_split("kinetics", ann, labels).videos] == [1]
    bad = write_lines(
        tmp_path / "bad.csv",
        ["label,youtube_id,time_start,time_end,split", "abseiling,a,1,11,val", "yoga,b,1.5,11,val"],
        nl,
    )
    with pytest.raises(AnnotationError, match=r"bad\.csv:3: expected whole seconds"):
        read_split("kinetics", bad)
    unknown = write_lines(
        tmp_path / "unknown.csv", ["label,youtube_id,time_start,time_end,split", "yoga,b,1,11,val"],
        nl,
    )
    with pytest.raises(AnnotationError, match=r"unknown\.csv:2: label 'yoga' is not in"):
        read_split("kinetics", unknown, labels)


def test_kinetics_list_format(tmp_path, nl):
    labels = write_lines(tmp_path / "k.csv", ["id,name", "0,abseiling"], nl)
    ann = write_lines(tmp_path / "k400_splits_val.txt", ["val/0wR5jVB-WPk_000417_000427.mp4 0"], nl)
    parsed = read_split("kinetics", ann, labels)
    assert parsed.format == "list"
    assert parsed.videos[0].video_id == "val/0wR5jVB-WPk_000417_000427.mp4"


def test_kinetics_csv_given_to_ssv2_names_file_and_line(tmp_path, nl):
    ann = write_lines(
        tmp_path / "validate.csv", ["label,youtube_id,time_start,time_end,split", "a,b,1,2,val"], nl
    )
    with pytest.raises(AnnotationError) as err:
        check_annotations("ssv2", ann, ann)
    message = str(err.value)
    assert str(ann) in message and "line 1" in message
    assert "as official" in message and "as list" in message


# ---------------------------------------------------------------------------------------
# Something-Something v2 official


def test_ssv2_official_json(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({
        "Pushing something from left to right": "1",
        "Holding something": "0",
        "Something falling like a rock": "2",
    }), encoding="utf-8-sig")  # with a BOM
    items = [
        {"id": "74225", "label": "pushing a pen from left to right",
         "template": "Pushing [something] from left to right", "placeholders": ["a pen"]},
        {"id": "3", "label": "holding a cup", "template": "Holding [something]",
         "placeholders": ["a cup"]},
        {"id": "9", "label": "a feather falling", "template": "[Something] falling like a rock",
         "placeholders": ["a feather"]},
    ]
    ann = tmp_path / "something-something-v2-validation.json"
    ann.write_bytes(json.dumps(items, indent=1).replace("\n", "\r\n").encode())
    check_annotations("ssv2", ann, labels)
    parsed = read_split("ssv2", ann, labels)
    assert parsed.format == "official"
    assert parsed.classes == [
        "Holding something", "Pushing something from left to right", "Something falling like a rock"
    ]
    assert [(v.video_id, v.class_id) for v in parsed.videos] == [
        ("74225.webm", 1), ("3.webm", 0), ("9.webm", 2)
    ]
    assert adapters.ADAPTERS["ssv2"].display_name(parsed.classes[1]) == (
        "pushing something from left to right"
    )


def test_ssv2_official_unknown_template(tmp_path):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"Holding something": "0"}))
    ann = tmp_path / "val.json"
    ann.write_text(json.dumps([{"id": "1", "template": "Dropping [something]"}]))
    with pytest.raises(AnnotationError, match=r"val\.json: item 0 \(id 1\): template"):
        read_split("ssv2", ann, labels)


def test_ssv2_list_format(tmp_path, nl):
    labels = write_lines(tmp_path / "ssv2.csv", ["id,name", '0,"Holding something"'], nl)
    ann = write_lines(tmp_path / "ssv2_splits_validation.txt", ["74225.webm 0"], nl)
    parsed = read_split("ssv2", ann, labels)
    assert parsed.format == "list"
    assert parsed.videos[0].label == "Holding something"


# ---------------------------------------------------------------------------------------
# A folder per class


def test_folder_per_class(tmp_path):
    root = tmp_path / "videos"
    for rel in ["Sliding_Square/a.mp4", "Sliding_Square/b.MP4", "Sliding_Square/notes.txt",
                "Rotating/x/c.avi", "Rotating/.hidden.mp4", "Empty/readme.md"]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    check_annotations("folder", root)
    parsed = read_split("folder", root)
    assert parsed.format == "folder"
    assert parsed.classes == ["Empty", "Rotating", "Sliding_Square"]
    assert [(v.video_id, v.class_id) for v in parsed.videos] == [
        ("Rotating/x/c.avi", 1), ("Sliding_Square/a.mp4", 2), ("Sliding_Square/b.MP4", 2)
    ]


def test_folder_adapter_rejects_a_file(tmp_path):
    path = write_lines(tmp_path / "list.txt", ["a.mp4 0"])
    with pytest.raises(AnnotationError, match="expected a folder with one subfolder per class"):
        check_annotations("folder", path)


# ---------------------------------------------------------------------------------------
# Open-VCLIP's K600 zero-shot lists (zs_label_db/k600_split{k}/): lines as its test.csv
# writes them, labels into its index2cls JSON


@pytest.mark.parametrize("nl", ["\n", "\r\n"])
def test_open_vclip_k600_lists_read_with_their_index2cls(tmp_path, nl):
    csv_path, labels = tmp_path / "test.csv", tmp_path / "k600-openset-index2cls.json"
    write_lines(csv_path, ["val/acting_in_play/L9GxK3fD-1w_000056_000066.mp4,0",
                           "val/arguing/a,b_000001_000011.mp4,1"], nl)
    labels.write_text('{"0": "acting in play", "1": "arguing"}')
    check_annotations("k600_open_vclip", csv_path, labels)
    split = read_split("k600_open_vclip", csv_path, labels, split=1)
    assert split.format == "open_vclip"
    assert split.classes == ["acting in play", "arguing"]
    assert [(v.video_id, v.label) for v in split.videos] == [
        ("val/acting_in_play/L9GxK3fD-1w_000056_000066.mp4", "acting in play"),
        ("val/arguing/a,b_000001_000011.mp4", "arguing"),  # split at the last comma
    ]


def test_an_open_vclip_label_outside_its_classes_names_the_line(tmp_path):
    csv_path, labels = tmp_path / "test.csv", tmp_path / "index2cls.json"
    write_lines(csv_path, ["val/x/a.mp4,0", "val/x/b.mp4,7"], "\n")
    labels.write_text('{"0": "x"}')
    with pytest.raises(AnnotationError, match=r"test.csv:2: label 7 is outside 0..0"):
        read_split("k600_open_vclip", csv_path, labels)


def test_an_index2cls_json_and_ssv2_labels_json_read_alike(tmp_path):
    by_index, by_name = tmp_path / "index2cls.json", tmp_path / "labels.json"
    by_index.write_text('{"1": "Apply Lipstick", "0": "Apply Eye Makeup"}')
    by_name.write_text('{"Apply Lipstick": "1", "Apply Eye Makeup": "0"}')
    assert read_class_list(by_index) == read_class_list(by_name) == [
        "Apply Eye Makeup", "Apply Lipstick"
    ]
