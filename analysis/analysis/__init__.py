"""Periodic jobs: measurement uploader, reference-data updaters, GeoIP
downloader, database backup."""
