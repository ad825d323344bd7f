"""Registry of the bundled public datasets (see ``shared/datasets/INDEX.md``).

- :data:`DATASETS` — ``name -> DatasetSpec`` (folder, files with sha256, official sources,
  loader, citation / license note, README statistics).
- :func:`list_datasets` — availability and statistics (computed by loading when the files are
  present and small, else the README numbers marked ``"stats_source": "README"``).
- :func:`load_dataset` — a :class:`Dataset`; when the files are missing it downloads them from
  the official source (checksums verified) or raises a DataError saying where to put them.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from ...config import resolve_data_dir
from ..errors import DataError, check_on_bad_rows
from . import amazon, hetrec, lightgcn, movielens, multibehavior, multitask, sequences, taobao
from .spec import Dataset, DatasetSpec, FileSpec, Source, find_file
from .verify import verify_default, verify_files

__all__ = ["DATASETS", "Dataset", "DatasetSpec", "FileSpec", "Source", "list_datasets", "load_dataset",
           "dataset_folder", "missing_files", "find_file", "verify_files"]

F = FileSpec
GH = "https://raw.githubusercontent.com"

# ------------------------------------------------------------------------------------ movielens
_ML_FILES = (
    F("README.grouplens.txt", "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52", required=False),
    F("u.data.gz", "c3fe59d9f784f19e1715f710845ac12970203e783301a9404cd615780b838694",
      "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"),
    F("u.genre", "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb", required=False),
    F("u.info", "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b", required=False),
    F("u.item.gz", "fddc64e52bb5d3b3bcb81b69c5d76b2688dbab87f6c564ba448a00b1f45d7e64",
      "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701"),
    F("u.occupation", "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d"),
    F("u.user", "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c"),
    F("u1.base.gz", "36a0884d6af65ef01d5bb9b73836aa7f9b9bbd105b73f02da7714d512550eea9",
      "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a", required=False),
    F("u1.test.gz", "65462c244edc78c7963519e0af7440d36a68b3c1b1446935d9f52e08dbe68c3b",
      "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950", required=False),
    F("u2.base.gz", "01b1ffa526047113455ebdaee19cd6dc4c864f3b9b9ed71c229b9951491ce749",
      "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e", required=False),
    F("u2.test.gz", "c7398fa3974bad51c2c006993d9c5b47883fc2c5fd33447c9db98d7633794928",
      "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3", required=False),
    F("u3.base.gz", "dc029ce3eee4743a3fceab014b5f49ada4bed85258105d78f01433c9fe42b369",
      "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d", required=False),
    F("u3.test.gz", "2e4f8c903929900676307154403ae0f8d29c97f5bbde4b317c03ea77861fb58c",
      "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d", required=False),
    F("u4.base.gz", "7038922ccac50a6e637da9b006403b81703f5ae784c367e658f503343a05d890",
      "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca", required=False),
    F("u4.test.gz", "0602d3f14f85f78ab7f1234b3a12c80cedf7e0ca26046d64ecbd0c13042c479e",
      "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9", required=False),
    F("u5.base.gz", "989e39837b67e727b288d94929938fd2d152a03a7a5f3657ab6655e079844bf7",
      "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485", required=False),
    F("u5.test.gz", "a9fec641e09fe0a8ab819d1a97630e33bbcbf85228088b0f1ae0b14075605cf8",
      "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634", required=False),
    F("ua.base.gz", "dd7fd1faecd594599656553f7dd9eadde8ebfaac7d826abaa12167cbb9e2da9a",
      "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2", required=False),
    F("ua.test.gz", "16d5d3c920f0eccc5b880fd75c5c01a033fa8222e9c05be85a954712225e198c",
      "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42", required=False),
    F("ub.base.gz", "6e24158bc98a69254bea22e1d9b839ab72b1a788e2b11d4a673b66f6bd46325f",
      "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881", required=False),
    F("ub.test.gz", "1ec2e661b9e5a9292dd47f719acb8e03e55a52e7c9be4ea6da51c08abd3403d5",
      "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da", required=False),
)
_ML_MEMBERS = tuple((("ml-100k/README" if f.name == "README.grouplens.txt" else f"ml-100k/{f.plain_name}"),
                     f.plain_name, f.content_checksum) for f in _ML_FILES)


def _gh_sources(repo_commit: str, prefix: str, files: tuple[FileSpec, ...], rename: dict | None = None):
    rename = rename or {}
    return tuple(Source(f"{GH}/{repo_commit}/{prefix}/{rename.get(f.plain_name, f.plain_name)}", "file",
                        ((f.plain_name, f.plain_name, f.content_checksum),)) for f in files)


# ------------------------------------------------------------------------------------ lightgcn
_GOWALLA_FILES = (
    F("item_list.txt.gz", "239ef90a398aa8759e56dc4c6512f32377433bcb1689b33e6cb70b206599a528",
      "6b186f92890cc3f0c15a6dae5d6285f125a302bb8c5ea0cd9a16cf9c16347139"),
    F("test.txt.gz", "9db4414306dbc518d3b81b0239515497908ecd6de09df99c6a92ba171e75b902",
      "099a2a73924e4b754dc6efd730d764f492321b53c38eb93298850c83acf57be3"),
    F("train.txt.gz", "34f37c8f107ce72977ae21ef32184edca42fe795bed81fe18d17856ef5bce3b7",
      "7244696fdeb23911319cf7b689f2e15a3c4c92549c873a5677b44e3f13cc3e62"),
    F("user_list.txt.gz", "3dbb3557200e8aceb7a85358707b39bec2852eedac2d880dd03d36c94c04540d",
      "5344c4d0deef610e1f148f23ad216a0db03b36f88834cd39a06786a672c5f5a1"),
)
_BOOK_FILES = (
    F("item_list.txt.gz", "8ec46308c22cb7ba613ee2014347620954b3518cc5fe61844ef1534a4ff6c5eb",
      "8eee6caf6e666d95fc24ca8e0ec089ee90b1b2d1dc17933726359a6b3ecd62cb"),
    F("test.txt.gz", "423e24539602c14ac614b7ea07b57b9c544af85c8fc6464820527f8c40260797",
      "6250754994dd953b91b48dccdd77a73f318e0634b4757c2abfcc9d33a54ab0f5"),
    F("user_list.txt.gz", "47a00d75a7ed5fd1c95ae9e012b9271c7cb1df367210b69c303b4bec47913db9",
      "b59cc7e4a1826e1eb313c4f0557bdafbb70661346d9c93911b97fe0e9fbd7078"),
)
_LIGHTGCN = "kuandeng/LightGCN/b067ec05f16a24e0e1efe63cd82385f0c469af20"

# ------------------------------------------------------------------------------------ sequences
_S3 = {
    "Beauty": (F("Beauty.txt.gz", "d90327e98288647f5bae59c0dba82e153af2d940eafb7540f4b05185e108d0fe",
                 "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"),
               F("Beauty_item2attributes.json.gz", "1914fdc21c3e1b0c36d23c3fc5e2cf64205bcc47f311ccbe7b51089221188fad",
                 "129e40f67486f6877eff0f5318cfa8530ee8ac23d8b0d1de04e1bb7a2ba0b2d4")),
    "Yelp": (F("Yelp.txt.gz", "a81963e5a94fd772d64b1d240154674fc64ebbc4c46cfd2d85cd80b90d44cf10",
               "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed"),
             F("Yelp_item2attributes.json.gz", "98138e2468582fa354ff2645a30f3492f26ca32630732038a99adde01b88aedf",
               "f25acd5e1e680e0b22fd4e3f4fb6be4b2a7461e9222610616e3e1ee6702dd58d")),
    "LastFM": (F("LastFM.txt.gz", "feee892bd0c0def1c7ad403a7b44c78ac1268c0f2f0787e01efabb42854c339e",
                 "9ded486adb5b0fe9dc761950afa0a9a05e93ff018992e0c52bf11afec529f802"),
               F("LastFM_item2attributes.json.gz", "b81e39e7f2139278d940aafcffe98c1c431f66cd531b2d07e76db2da61a080c7",
                 "a4ccd678dc9ff6d43fe5073f491db5c9b02eb98dfa4f8c0382913a784be217ef"),
               F("LastFM_sample.txt.gz", "c8291611c79fcccb80aea87e3d776945dd7c78d0549ce33e7ed024146c3a94e6",
                 "60194cc2e4fd1aa8b5dc8872e1f3af9c6abd09c39d478d3df9337cb97e6e2f0d")),
}
_S3REC = "RUCAIBox/CIKM2020-S3Rec/2a81540ae18615d88ef88227b0c066e5b74781e5"
_S3_STATS = {"Beauty": (198502, 22363, 12101, 637), "Yelp": (316354, 30431, 20033, 1001),
             "LastFM": (52551, 1090, 3646, 388)}
_S3_CITE = ("K. Zhou et al., S3-Rec: Self-Supervised Learning for Sequential Recommendation with Mutual "
            "Information Maximization, CIKM 2020")

_VIDEO = (F("Video.txt.gz", "d1d700c3a1d5cf3f5c3b0a108c61179c5f24114f15d665e49b8ed6a53e463712",
            "b7376fe24430743f411dc7f567285657b2adb3f74361cc7ba0aee94f3024b651"),)

# ------------------------------------------------------------------------------------ others
_TAOBAO = (F("UserBehavior_head814users.csv.gz", "a9dcc0dcb18784039b190c1b9f1f94f1ca97e60bbe69e87a95dd138200e01648",
             "6f7023508e9c8eba2b067afb116771329c4ef8860112f88415daf22e97726a09"),)
_HETREC = (
    F("artists.dat.gz", "d6784b625c6f3bdb73bf75b2d8873300fd4028afc44ba6282804e7e7b983d9bc",
      "c173881362c6b28551368fecb3c0be5a6a30a6cd859e1f5775413dfe46d48648"),
    F("tags.dat.gz", "b4cfd74a81fbdd01b6b9e5dded7d34ba95fe7f3bc6692197317dd75eef3d902e",
      "e95175f259be4c0c47644ae23d66131cd6d5767142a1405000e79f5584691d70", required=False),
    F("user_artists.dat.gz", "a9e406672cf9b484e4d09820fdf08fe02ab037c5d25ad75cb3f74eec141af9d0",
      "650cd69d5a68db24b439042557aa539aec47e473273e12cdfdca2cd944b3773a"),
    F("user_friends.dat.gz", "eee152f8b8766ff280fe7492382cd8130f4eb578f20b7aebe6474431b06aedaa",
      "9a3a8f7fa5f5ec832335e5b58ed69a4cf27c6f6f6afcde62134810eea46445a7"),
)
# content sha256 of the decompressed JSON computed from the project copy (README gives only the .gz hash,
# whose bytes differ from upstream because the uploader re-compressed it)
_BEAUTY = (F("All_Beauty_5.json.gz", "8e49737fefaec9290187c69bf92889452df8be0ab5e36c9476520d6639683279",
             "2216c07d74d92744fefcff3cfe9eac5831634bcc77bfb2a47352f7d51f96cb86"),)
_MUSIC = (F("reviews_Musical_Instruments_5.json.gz", "1287edfcbe5bf00163d37affc5ff3f694c576d039e1bddf49234a5254f077cfc",
            "8e1aaab451ba61484dfe393f53d11886246bc426c7046b180b62352580f68c1d"),)
_TMALL = (
    F("buy.txt.gz", "cd124c5c0eac639a9c8769701b694d5a5ce1611371e1bc18c21ea3b7c821c580",
      "f07d4e62cd9761ce7659743e6fa314ee249479241358d0cdc2d4c63f0997620c", required=False),
    F("cart.txt", "6e242a238686fc2468ce7e28e69e77b3aa7d7857836f8531f24e79e53c2cdef6"),
    F("collect.txt.gz", "25c1e3dc0063b1a0a0332bdced7196fb1385a49c45e48d2452a3f014a58c5c0e",
      "3145b74e5d854f8311c8b0c4a6d05bc9e23eb4a1ea3b9f3447091f6c43c2a5c6"),
    F("data_size.txt", "3ba7536a465923cbc5b2aaefa22c5f9a90aa13cc9b62471a46984107735da89a"),
    F("test.txt.gz", "201fe26615b09aa81258c71d06c88f29795700b6114b996ee8c2810d5e9442bf",
      "2905cd5f6aa59f3dd5c1171f6ec5333b20ebeba27e3f9e70562582216f8cb94c"),
    F("train.txt.gz", "cd124c5c0eac639a9c8769701b694d5a5ce1611371e1bc18c21ea3b7c821c580",
      "f07d4e62cd9761ce7659743e6fa314ee249479241358d0cdc2d4c63f0997620c"),
    F("validation.txt.gz", "904706ed8d7def0c0b4322f7e1236bce72cc12a258ab457ba3e248d1dcedc988",
      "6c0de5971df7512d297a0e54420ce577095b9380c80f5bf1dffc86cb6a745ad8"),
)
_BEIBEI = (
    F("cart.txt.gz", "74f551f22130f389324ebb8166c31998bb6040c0600837a776f7ff0820bfe33f",
      "fabc00d05a4674df2b7cf372b4b67144818aac83a1d79b83d2268f514568549a"),
    F("sparsity.split.gz", "f4d3d5c88547cb36c705f5dcf02936dd4c5bce5c74a370cfe827729b11572870",
      "180cbf6e631a8ca7ba3c3470e361e04d29e49335459452784d69130ca98ebe78", required=False),
    F("test.txt.gz", "5651d8b4c1f9acd9e0bbd0976e6233900ca411bbb76177115cbf9c320abcc4d6",
      "84709478e3b07aa7c20e39fbcd22e0ca57b485e16ed1338294cf8b9e411eef18"),
    F("train.txt.gz", "1f8925f0c7d36400efb1f62e88dd44d2e7d6106dc7af1f23f3786240a5ca4b80",
      "0e7c792b48eea1c122ac657ef95415bc943d1a4e9b08531334c0c7904ab51538"),
)
_GHCF_TAOBAO = (
    F("cart.txt.gz", "6f72fb639e25a53b5cef1f5ca7d93e09a6e97beb282516e1ec4d816b2cd270d5",
      "f41bfaa2cc4d984d36c9b14a4310f2e762d817368872e6520b4370f11d05684f"),
    F("sparsity.split.gz", "04721ac7fae1d44f00e77988200b4f904c49818b5d19ea825a8b9261fb4bb3b8",
      "52cb210f3834baa65f56fe4690b483072e21301684b65045d8947d86d0c0ad78", required=False),
    F("test.txt.gz", "f7f3510b2605dba81a8b655d50b8e17441f5f65d55d79c1d32276949785ef04f",
      "22b9c3c09c302e19808b2c42cc0ad94b99df3b15006c74b5abd8dab1e7870753"),
    F("train.txt.gz", "da373c82b216fa42b9034af7276aab36da8a7961fc6a2df49dad1cec788c0fac",
      "90075dde98ba5e202c7a860ccde5b6308019e8c99f9e621a38b723248d7804e4"),
)
_GHCF = "chenchongthu/GHCF/5ca2d693410c90721a980bab609bfab140fa30b1"
_GHCF_CITE = ("C. Chen et al., Graph Heterogeneous Multi-Relational Recommendation, AAAI 2021 (GHCF); "
              "EHCF (AAAI 2020); NMTR (ICDE 2019)")
_MT = (
    F("ali_ccp_test_sample.csv", "9764a9b8e53b25f85c00e08a89f65ecfadab100cb0834161bd7ef671b7702a09"),
    F("ali_ccp_train_sample.csv", "1c1d125bcdfca70c8f5ed24f6221acadab3e19b70e0b06b3eb3adb2af7a0f9b5"),
    F("ali_ccp_val_sample.csv", "1236e1504b76bf7ceb48dbe3d999ae8b49f61fcda2d684578320fd9fc7821104"),
    F("aliexpress_test_sample.csv", "c264673dc08e68d1c6153b48c9039a3ea4d3ff3106b071550db34e311e25d529"),
    F("aliexpress_train_sample.csv", "9a602d2bd6012b23898437f60977135b65e75c3414bf19cac0d70408b12035ef"),
)
_RECHUB = "datawhalechina/torch-rechub/5a73b2eebc3a670dc64c54971cc06a78ddd55394/examples/ranking/data"

_SPECS = [
    DatasetSpec(
        "movielens-100k", "movielens-100k",
        "MovieLens 100K: 100,000 ratings 1-5 with timestamps; user age/gender/occupation; item genres/year",
        _ML_FILES, movielens.load,
        (Source("https://files.grouplens.org/datasets/movielens/ml-100k.zip", "zip", _ML_MEMBERS),),
        "F. M. Harper and J. A. Konstan, The MovieLens Datasets: History and Context, ACM TiiS 5(4), 2015",
        "GroupLens terms: research use, no redistribution without permission, cite the paper",
        stats={"events": 100000, "users": 943, "items": 1682, "time_min": 874724710, "time_max": 893286638}),
    DatasetSpec(
        "lightgcn-gowalla", "lightgcn-gowalla",
        "Gowalla check-ins, official LightGCN/NGCF train/test split (implicit, no timestamps)",
        _GOWALLA_FILES, lightgcn.load_gowalla, _gh_sources(_LIGHTGCN, "Data/gowalla", _GOWALLA_FILES),
        "E. Cho et al., KDD 2011; X. Wang et al., NGCF, SIGIR 2019; X. He et al., LightGCN, SIGIR 2020",
        "no data license stated in the LightGCN/NGCF repositories; upstream SNAP loc-gowalla",
        stats={"events": 1027370, "users": 29858, "items": 40981, "train": 810128, "test": 217242}),
    DatasetSpec(
        "lightgcn-amazon-book-partial", "lightgcn-amazon-book-partial",
        "PARTIAL Amazon-Book LightGCN split: test.txt + id maps only (train.txt missing)",
        _BOOK_FILES, lightgcn.load_amazon_book, _gh_sources(_LIGHTGCN, "Data/amazon-book", _BOOK_FILES),
        "X. He et al., LightGCN, SIGIR 2020; J. McAuley et al. (Amazon reviews)",
        "no data license stated; Amazon review data for research", partial=True,
        stats={"events": 603378, "users": 52639, "n_users": 52643, "n_items": 91599, "partial": "train.txt missing"}),
    *[DatasetSpec(
        f"s3rec-{stem.lower()}", "s3rec-sequences",
        f"S3-Rec {stem} user sequences (order only) with item attributes"
        + (" and 99 sampled test negatives" if stem == "LastFM" else ""),
        _S3[stem], partial(sequences.load_s3rec, name=f"s3rec-{stem.lower()}"),
        _gh_sources(_S3REC, "data", _S3[stem]), _S3_CITE,
        "no LICENSE in the S3-Rec repository; upstream Amazon / Yelp / HetRec terms",
        stats={"events": _S3_STATS[stem][0], "users": _S3_STATS[stem][1], "items": _S3_STATS[stem][2],
               "attributes": _S3_STATS[stem][3]})
      for stem in ("Beauty", "Yelp", "LastFM")],
    DatasetSpec(
        "sasrec-amazon-video-games", "sasrec-amazon-video-games",
        "SASRec 'Video': Amazon Video Games user sequences (order only)",
        _VIDEO, sequences.load_sasrec,
        (Source(f"{GH}/kang205/SASRec/e3738967fddab206d6eeb4fda433e7a7034dd8b1/data/Video.txt", "file",
                (("Video.txt", "Video.txt", _VIDEO[0].content_checksum),)),),
        "W.-C. Kang and J. McAuley, Self-Attentive Sequential Recommendation, ICDM 2018",
        "SASRec repository Apache-2.0; upstream Amazon terms",
        stats={"events": 287107, "users": 31013, "items": 23715}),
    DatasetSpec(
        "taobao-userbehavior-sample", "taobao-userbehavior-sample",
        "Taobao UserBehavior head sample: 814 users, pv/cart/fav/buy with timestamps and item categories",
        _TAOBAO, taobao.load, (),
        "H. Zhu et al., Learning Tree-based Deep Model for Recommender Systems, KDD 2018 (Tianchi dataset 649)",
        "Alibaba Tianchi terms (research use); do not redistribute",
        stats={"events": 84287, "users": 814, "items": 55233, "categories": 2911,
               "behaviors": {"pv": 75693, "cart": 4494, "fav": 2351, "buy": 1749},
               "time_min": 1505117799, "time_max": 1512316763},
        download_note="no automatic download: the sample is the head of the Tianchi UserBehavior.csv "
                      "(login required at https://tianchi.aliyun.com/dataset/649); copy the project file"),
    DatasetSpec(
        "hetrec2011-lastfm-2k", "hetrec2011-lastfm-2k",
        "HetRec 2011 Last.fm: user-artist listening counts (label) + friendship graph (meta['friends'])",
        _HETREC, hetrec.load,
        (Source("https://files.grouplens.org/datasets/hetrec2011/hetrec2011-lastfm-2k.zip", "zip",
                tuple((f.plain_name, f.plain_name, f.content_checksum) for f in _HETREC)),),
        "I. Cantador, P. Brusilovsky, T. Kuflik, HetRec 2011 workshop (RecSys 2011)",
        "GroupLens-hosted, research use", partial=True,
        stats={"events": 92834, "users": 1892, "items": 17632, "friendships": 12717},
        download_note="the project copy could not be proven byte-identical to the GroupLens zip; a download "
                      "whose content differs fails the checksum"),
    DatasetSpec(
        "amazon2018-all-beauty-5core", "amazon2018-all-beauty-5core",
        "Amazon 2018 All Beauty 5-core reviews (rating label, timestamps); 1,027 exact duplicate rows skipped",
        _BEAUTY, amazon.load_all_beauty,
        (Source("https://datarepo.eng.ucsd.edu/mcauley_group/data/amazon_v2/categoryFilesSmall/All_Beauty_5.json.gz",
                "gzip", (("", "All_Beauty_5.json", _BEAUTY[0].content_checksum),)),),
        "J. Ni, J. Li, J. McAuley, Justifying recommendations using distantly-labeled reviews and "
        "fine-grained aspects, EMNLP 2019", "McAuley lab Amazon review data, research use",
        stats={"events": 4242, "rows": 5269, "duplicate_rows": 1027, "users": 991, "items": 85}),
    DatasetSpec(
        "amazon2014-musical-instruments-5core", "amazon2014-musical-instruments-5core",
        "Amazon 2014 Musical Instruments 5-core reviews (rating label, timestamps)",
        _MUSIC, amazon.load_musical_instruments,
        (Source("http://snap.stanford.edu/data/amazon/productGraph/categoryFiles/reviews_Musical_Instruments_5.json.gz",
                "gzip", (("", "reviews_Musical_Instruments_5.json", _MUSIC[0].content_checksum),)),),
        "R. He and J. McAuley, WWW 2016; J. McAuley et al., SIGIR 2015", "McAuley lab Amazon review data, research use",
        stats={"events": 10261, "users": 1429, "items": 900}),
    DatasetSpec(
        "mbgcn-tmall-partial", "mbgcn-tmall-partial",
        "PARTIAL Tmall (MBGCN): buy (train/valid/test) + collect + cart; click missing",
        _TMALL, multibehavior.load_mbgcn_tmall,
        _gh_sources("tsinghua-fib-lab/MBGCN/a674f2a6aad84c50597a0a2c00bc0fc13d47f151", "Tmall",
                    tuple(f for f in _TMALL if f.name != "buy.txt.gz")),
        "B. Jin et al., Multi-behavior Recommendation with Graph Convolutional Networks, SIGIR 2020",
        "MBGCN repository MIT", partial=True,
        stats={"events": 510668, "n_users": 41738, "n_items": 11953,
               "behaviors": {"buy": 287158, "collect": 221514, "cart": 1996}}),
    DatasetSpec(
        "ghcf-beibei-partial", "ghcf-beibei-partial",
        "PARTIAL Beibei (GHCF): purchase train/test + cart; view missing",
        _BEIBEI, partial(multibehavior.load_ghcf, name="ghcf-beibei-partial"),
        _gh_sources(_GHCF, "Data/Beibei", _BEIBEI), _GHCF_CITE, "no license stated", partial=True,
        stats={"events": 947198, "users": 21716, "items": 7977, "behaviors": {"purchase": 304576, "cart": 642622}}),
    DatasetSpec(
        "ghcf-taobao-partial", "ghcf-taobao-partial",
        "PARTIAL Taobao (GHCF): purchase train/test + cart; view missing",
        _GHCF_TAOBAO, partial(multibehavior.load_ghcf, name="ghcf-taobao-partial"),
        _gh_sources(_GHCF, "Data/Taobao", _GHCF_TAOBAO), _GHCF_CITE, "no license stated", partial=True,
        stats={"events": 453518, "users": 48749, "items": 39493, "behaviors": {"purchase": 259771, "cart": 193747}}),
    DatasetSpec(
        "multitask-samples-aliccp-aliexpress", "multitask-samples-aliccp-aliexpress",
        "Tiny Ali-CCP / AliExpress multi-task CTR sample tables (fixtures; tables in meta['tables'])",
        _MT, multitask.load,
        tuple(Source(f"{GH}/{_RECHUB}/{'ali-ccp' if f.name.startswith('ali_ccp') else 'aliexpress'}/{f.name}",
                     "file", ((f.name, f.name, f.sha256),)) for f in _MT),
        "X. Ma et al., ESMM, SIGIR 2018 (Ali-CCP); D. Xi et al., AITM, KDD 2021 (AliExpress); torch-rechub",
        "torch-rechub MIT; Tianchi terms for the data", partial=True,
        stats={"rows": 320}),
]

DATASETS: dict[str, DatasetSpec] = {s.name: s for s in _SPECS}


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; known: {sorted(DATASETS)}")
    return DATASETS[name]


def dataset_folder(name: str, data_dir: str | os.PathLike | None = None) -> Path:
    return resolve_data_dir(data_dir) / _spec(name).folder


def missing_files(name: str, data_dir: str | os.PathLike | None = None) -> list[str]:
    """Required files of ``name`` not present (in stored or plain/gzip form) under the data dir."""
    folder = dataset_folder(name, data_dir)
    return [f.name for f in _spec(name).required_files() if find_file(folder, f.name) is None]


def load_dataset(name: str, data_dir: str | os.PathLike | None = None, *, on_bad_rows: str = "error",
                 download: bool = True, mirror: str | None = None, verify: bool | None = None) -> Dataset:
    """Load a registered dataset from ``data_dir`` (default: :func:`recgraph.config.resolve_data_dir`).

    Missing files are downloaded from the official source when ``download`` (checksums verified,
    written atomically; ``mirror`` / ``$RECGRAPH_MIRROR`` replaces the host); offline or without a
    source a :class:`DataError` says which files to put where. Every present file is checked
    against its published sha256 on load (``verify``; None → on unless ``$RECGRAPH_VERIFY_DATA=0``;
    verdicts cached by size + mtime, see :mod:`.verify`): a file changed after download is a
    DataError, not silently different data."""
    check_on_bad_rows(on_bad_rows)
    if verify is None:
        verify = verify_default()
    spec = _spec(name)
    folder = dataset_folder(name, data_dir)
    missing = missing_files(name, data_dir)
    if missing:
        from .download import download_dataset, manual_instructions

        if not download:
            raise DataError(manual_instructions(spec, folder, missing, reason="files are missing"),
                            file=str(folder))
        download_dataset(name, data_dir, mirror=mirror)
    if verify:
        verify_files(spec, folder)
    return spec.loader(folder, on_bad_rows=on_bad_rows)


_COMPUTE_LIMIT = 1_000_000  # bytes on disk: datasets up to this size are loaded for list_datasets


def list_datasets(data_dir: str | os.PathLike | None = None, *, compute: bool | None = None,
                  verify: bool | None = None) -> list[dict]:
    """One row per registered dataset: name, folder, availability, partial flag, statistics.

    ``compute=None`` loads available datasets whose required files total ≤ 1 MB on disk (a fraction of a
    second each) and uses the README numbers for the others; ``True`` loads every available one;
    ``False`` never loads. ``stats_source`` says which: ``"computed"`` or ``"README"``."""
    rows = []
    for spec in DATASETS.values():
        folder = resolve_data_dir(data_dir) / spec.folder
        present = [find_file(folder, f.name) for f in spec.required_files()]
        available = all(p is not None for p in present)
        size = sum(p.stat().st_size for p in present if p is not None)
        row = {"name": spec.name, "folder": str(folder), "available": available, "partial": spec.partial,
               "description": spec.description, "downloadable": bool(spec.sources)}
        do = available and (compute is True or (compute is None and size <= _COMPUTE_LIMIT))
        if do:
            try:
                if verify if verify is not None else verify_default():
                    verify_files(spec, folder)
                ds = spec.loader(folder, on_bad_rows="error")
                st = ds.interactions.describe()
                st["n_users"], st["n_items"] = ds.interactions.n_users, ds.interactions.n_items
                if "rows" in ds.meta:
                    st["rows"] = ds.meta["rows"]
                if ds.skipped.total:
                    st["skipped"] = ds.skipped.total
                row.update(stats=st, stats_source="computed")
            except DataError as exc:
                row.update(stats=dict(spec.stats), stats_source="README", error=str(exc))
        else:
            row.update(stats=dict(spec.stats), stats_source="README")
        rows.append(row)
    return rows
