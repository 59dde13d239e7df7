"""The commands of LicenseManagement, one mixin per area."""
