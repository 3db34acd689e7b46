"""Catalog and S3 client settings (no service needed): path-style addressing everywhere."""

from dpe_pipeline import lakehouse
from dpe_pipeline.settings import get_settings


def test_pyiceberg_catalog_is_the_shared_sql_catalog_with_path_style_s3():
    properties = lakehouse.catalog_properties(get_settings())
    assert properties["type"] == "sql" and properties["uri"].startswith("postgresql+psycopg2://")
    assert properties["uri"].endswith("/iceberg") and properties["warehouse"] == "s3://warehouse/"
    assert properties["s3.force-virtual-addressing"] == "false"
    assert properties["py-io-impl"] == "pyiceberg.io.pyarrow.PyArrowFileIO"


def test_boto3_client_is_path_style_sigv4():
    client = lakehouse.s3_client(get_settings())
    assert client.meta.config.s3["addressing_style"] == "path"
    assert client.meta.config.signature_version == "s3v4"
    assert client.meta.endpoint_url == get_settings().s3_endpoint


def test_file_kinds_and_s3_urls():
    assert lakehouse.split_s3_url("s3://warehouse/dpe/logements") == ("warehouse", "dpe/logements")
    assert lakehouse.file_kind("data/departement=48/00000-1.parquet") == "data"
    assert lakehouse.file_kind("metadata/00001-abc.metadata.json") == "metadata"
    assert lakehouse.file_kind("metadata/snap-123-1-abc.avro") == "manifest list"
    assert lakehouse.file_kind("metadata/abc-m0.avro") == "manifest"
