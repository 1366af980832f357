"""Block storage: the Cinder v3 subset (:mod:`novalite.volume.api`), its states
(:mod:`novalite.volume.states`), the storage backends (:mod:`novalite.volume.backends`,
entry-point group ``novalite.volume.backends``) and the Nova side of attachments
(:mod:`novalite.volume.attachments`)."""
