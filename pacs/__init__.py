"""The portal as a node of the hospital's imaging network: the PACS and modalities that may send
it films (DicomNode), the DICOM listener that receives them, and what became of each instance
received (ReceivedInstance). It feeds diagnosis.scan_intake, the intake every upload uses; diagnosis
never imports from here."""
