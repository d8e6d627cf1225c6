// Package schemas embeds the anfed signal catalog: one JSON Schema
// (draft 2020-12) per signal class, with valid and invalid examples.
package schemas
